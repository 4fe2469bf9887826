using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tilt.Engine;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Kernels;
using Tilt.Engine.Models.Loading;

namespace Tilt.Hosting;

/// <summary>
/// The hosted service behind <c>AddTilt</c>: at start-up it loads every configured model and creates its engine (one llama
/// context each), so the first request pays no load; at shutdown it stops admitting, drains for
/// <see cref="TiltOptions.DrainTimeout"/>, cancels what is left and releases the models. A model that cannot be loaded
/// fails the host's start with a <see cref="TiltException"/> naming the model's setting and the file.
/// </summary>
internal sealed class TiltEngines : ITiltEngines, IHostedService, IAsyncDisposable
{
    private readonly IOptions<TiltOptions> _options;
    private readonly ILogger<TiltEngines> _logger;
    private readonly Lazy<Dictionary<string, TiltEngine>> _engines;
    private readonly List<(ILanguageModel Model, IStepKernels Kernels, DecodingEngine Engine)> _loaded = [];
    private readonly Lock _gate = new();
    private bool _released;

    public TiltEngines(IOptions<TiltOptions> options, ILogger<TiltEngines> logger)
    {
        _options = options;
        _logger = logger;
        // Reading the options runs their validation, so it waits for the first use (the host validates them at start).
        _engines = new(() => options.Value.Models.ToDictionary(
            m => m.Key, m => new TiltEngine(m.Key, m.Value), StringComparer.OrdinalIgnoreCase));
    }

    public IReadOnlyList<string> Names => [.. _engines.Value.Keys];

    public TiltEngine Default
    {
        get
        {
            if (_options.Value.DefaultModel is { } name) return this[name];
            var engines = _engines.Value;
            return engines.Count == 1
                ? engines.Values.First()
                : throw new InvalidOperationException(
                    $"{engines.Count} Tilt models are configured ({string.Join(", ", engines.Keys)}): name one, or set {TiltOptions.SectionName}:DefaultModel");
        }
    }

    public TiltEngine this[string name] => TryGet(name, out var engine)
        ? engine
        : throw new KeyNotFoundException($"no Tilt model named '{name}' (configured: {string.Join(", ", _engines.Value.Keys)})");

    public bool TryGet(string name, [NotNullWhen(true)] out TiltEngine? engine)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _engines.Value.TryGetValue(name, out engine);
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var options = _options.Value;
        foreach (var engine in _engines.Value.Values)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Loading maps the file and creates the llama context: seconds for a large model, so off the caller's thread.
            await Task.Run(() => Load(engine, options), cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var drain = _options.Value.DrainTimeout;
        // Every engine drains at the same time; the host's own shutdown timeout still bounds the whole stop.
        var stops = _engines.Value.Values.Select(async engine =>
        {
            if (engine.BeginStop() is not { } decoding) return;
            var status = decoding.Status;
            _logger.LogInformation("Tilt model {Model}: stopping, {Running} running and {Queued} queued requests get {Drain} to finish",
                engine.Name, status.RunningRequests, status.QueuedRequests, drain);
            await decoding.StopAsync(drain).ConfigureAwait(false);
            status = decoding.Status;
            _logger.LogInformation("Tilt model {Model}: stopped after {Iterations} iterations, {Tokens} tokens decoded",
                engine.Name, status.Iterations, status.TokensDecoded);
        });
        try
        {
            await Task.WhenAll(stops).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // Past the host's timeout too: disposing completes what still runs with ObjectDisposedException.
            Release();
        }
    }

    public ValueTask DisposeAsync()
    {
        if (_engines.IsValueCreated)
            foreach (var engine in _engines.Value.Values) engine.BeginStop();
        Release();
        return ValueTask.CompletedTask;
    }

    private void Load(TiltEngine engine, TiltOptions options)
    {
        string key = $"{TiltOptions.SectionName}:Models:{engine.Name}";
        var settings = engine.Settings;
        string path = Path.GetFullPath(settings.Path!);
        var clock = Stopwatch.StartNew();
        _logger.LogInformation("Tilt model {Model}: loading {Path}", engine.Name, path);
        ILanguageModel? model = null;
        IStepKernels? kernels = null;
        DecodingEngine? decoding = null;
        try
        {
            model = Tilt.Engine.Models.Loading.LanguageModel.Load(path, new GgufLoadOptions
            {
                NativeLibraryPath = options.NativeLibraryPath,
                GpuLayers = settings.GpuLayers,
            });
            kernels = StepKernels.Create(settings.Backend, line => _logger.LogDebug("Tilt model {Model}: {Kernels}", engine.Name, line));
            decoding = new DecodingEngine(model, kernels, settings.ToEngineOptions(engine.Name));
            lock (_gate)
            {
                if (_released) throw new ObjectDisposedException(nameof(TiltEngines), "the host stopped while the model loaded");
                // The last statement that can fail: from here on Release owns all three.
                _loaded.Add((model, kernels, decoding));
            }
        }
        catch (Exception e)
        {
            decoding?.Dispose();
            kernels?.Dispose();
            model?.Dispose();

            _logger.LogError(e, "Tilt model {Model}: cannot load {Path}: {Message}", engine.Name, path, e.Message);
            throw new TiltException($"{key}: cannot load {path}: {e.Message}", e);
        }

        engine.Start(model, decoding);

        _logger.LogInformation(
            "Tilt model {Model}: loaded in {Milliseconds} ms ({Vocabulary} tokens, hidden size {Hidden}; {Sequences} sequences of {Length} tokens)",
            engine.Name, clock.ElapsedMilliseconds, engine.Model.VocabularySize, engine.Model.HiddenSize, settings.MaxSequences, settings.MaxSequenceLength);
    }

    private void Release()
    {
        List<(ILanguageModel Model, IStepKernels Kernels, DecodingEngine Engine)> loaded;
        lock (_gate)
        {
            _released = true;
            loaded = [.. _loaded];
            _loaded.Clear();
        }

        foreach (var (model, kernels, engine) in loaded)
        {
            engine.Dispose();
            kernels.Dispose();
            model.Dispose();
        }
    }
}
