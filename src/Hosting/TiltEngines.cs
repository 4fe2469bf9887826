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

namespace Tilt.Hosting;

/// <summary>
/// The hosted service behind <c>AddTilt</c>: at start-up it loads every configured model and creates its engine (one llama
/// context each), so the first request pays no load (or, with <see cref="TiltOptions.LoadInBackground"/>, loads them while
/// the host runs). When the application begins stopping it stops admitting and drains for
/// <see cref="TiltOptions.DrainTimeout"/>, then cancels what is left; the hosted service's stop waits for that and releases
/// the models. A model that cannot be loaded fails the host's start (or <see cref="WhenLoaded"/>) with a
/// <see cref="TiltException"/> naming the model's setting and the file.
/// </summary>
internal sealed class TiltEngines : ITiltEngines, IHostedService, IAsyncDisposable
{
    private readonly IOptions<TiltOptions> _options;
    private readonly ILogger<TiltEngines> _logger;
    private readonly IHostApplicationLifetime? _lifetime;
    private readonly Lazy<ByName> _engines;
    private readonly List<(ILanguageModel Model, IStepKernels Kernels, DecodingEngine Engine)> _loaded = [];
    private readonly TaskCompletionSource _whenLoaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopLoading = new();
    private readonly Lock _gate = new();
    private CancellationTokenRegistration _onStopping;
    private Task? _drain;
    private bool _released;

    public TiltEngines(IOptions<TiltOptions> options, ILogger<TiltEngines> logger, IHostApplicationLifetime? lifetime = null)
    {
        _options = options;
        _logger = logger;
        _lifetime = lifetime;
        // Reading the options runs their validation, so it waits for the first use (the host validates them at start).
        // Aliases are keys too: a name routes to its model whichever of its names a caller uses (the validator keeps them unique).
        _engines = new(() =>
        {
            TiltEngine[] configured = [.. options.Value.Models.Select(m => new TiltEngine(m.Key, m.Value))];
            var names = configured.ToDictionary(e => e.Name, StringComparer.OrdinalIgnoreCase);
            foreach (var engine in configured)
                foreach (string alias in engine.Aliases) names.TryAdd(alias, engine);
            return new ByName(configured, names);
        });
    }

    /// <summary>The engines in configuration order.</summary>
    private IReadOnlyList<TiltEngine> Configured => _engines.Value.Configured;

    public IReadOnlyList<string> Names => [.. Configured.Select(e => e.Name)];

    public Task WhenLoaded => _whenLoaded.Task;

    public TiltEngine Default
    {
        get
        {
            if (_options.Value.DefaultModel is { } name) return this[name];
            var engines = Configured;
            return engines.Count == 1
                ? engines[0]
                : throw new InvalidOperationException(
                    $"{engines.Count} Tilt models are configured ({string.Join(", ", Names)}): name one, or set {TiltOptions.SectionName}:DefaultModel");
        }
    }

    public TiltEngine this[string name] => TryGet(name, out var engine)
        ? engine
        : throw new KeyNotFoundException($"no Tilt model named '{name}' (configured: {string.Join(", ", Names)})");

    public bool TryGet(string name, [NotNullWhen(true)] out TiltEngine? engine)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _engines.Value.Names.TryGetValue(name, out engine);
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var options = _options.Value;
        // Draining starts when the application starts stopping, before a web server stops: its stop waits for the
        // requests in flight, which the drain deadline then bounds.
        if (_lifetime is not null) _onStopping = _lifetime.ApplicationStopping.Register(() => _ = BeginDrain());
        if (options.LoadInBackground)
        {
            _ = Task.Run(() => LoadAllAsync(options, _stopLoading.Token), CancellationToken.None);
            return;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopLoading.Token);
        await LoadAllAsync(options, linked.Token).ConfigureAwait(false);
        await _whenLoaded.Task.ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await BeginDrain().WaitAsync(cancellationToken).ConfigureAwait(false);
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
            foreach (var engine in Configured) engine.BeginStop();
        _stopLoading.Cancel();
        _onStopping.Dispose();
        Release();
        return ValueTask.CompletedTask;
    }

    /// <summary>Stops admitting on every engine and drains them together; once (later calls return the same task).</summary>
    private Task BeginDrain()
    {
        lock (_gate)
        {
            return _drain ??= DrainAsync();
        }
    }

    private async Task DrainAsync()
    {
        var drain = _options.Value.DrainTimeout;
        // Every engine stops admitting now (before the first await) and drains at the same time; the host's own shutdown
        // timeout still bounds the whole stop.
        var stops = Configured.Select(async engine =>
        {
            if (engine.BeginStop() is not { } decoding) return;
            var status = decoding.Status;
            _logger.LogInformation("Tilt model {Model}: stopping, {Running} running and {Queued} queued requests get {Drain} to finish",
                engine.Name, status.RunningRequests, status.QueuedRequests, drain);
            await decoding.StopAsync(drain).ConfigureAwait(false);
            status = decoding.Status;
            _logger.LogInformation("Tilt model {Model}: stopped after {Iterations} iterations, {Tokens} tokens decoded",
                engine.Name, status.Iterations, status.TokensDecoded);
        }).ToList();
        _stopLoading.Cancel();
        await Task.WhenAll(stops).ConfigureAwait(false);
    }

    /// <summary>Loads the models one after another; the first failure ends loading and faults <see cref="WhenLoaded"/>.</summary>
    private async Task LoadAllAsync(TiltOptions options, CancellationToken cancellationToken)
    {
        try
        {
            foreach (var engine in Configured)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // Loading maps the file and creates the llama context: seconds for a large model, so off the caller's thread.
                await Task.Run(() => Load(engine, options), cancellationToken).ConfigureAwait(false);
            }
            _whenLoaded.TrySetResult();
        }
        catch (OperationCanceledException e)
        {
            _whenLoaded.TrySetCanceled(e.CancellationToken);
            if (!options.LoadInBackground) throw;
        }
        catch (Exception e)
        {
            _whenLoaded.TrySetException(e);
            // In the background nobody awaits this task: WhenLoaded, the engine's state and the log carry the failure.
            if (!options.LoadInBackground) throw;
        }
    }

    private void Load(TiltEngine engine, TiltOptions options)
    {
        string key = $"{TiltOptions.SectionName}:Models:{engine.Name}";
        var settings = engine.Settings;
        // A factory's model has no file of the host's to name; its own errors say what failed.
        string path = settings.ModelFactory is null ? Path.GetFullPath(settings.Path!) : "the model factory's model";
        var clock = Stopwatch.StartNew();
        _logger.LogInformation("Tilt model {Model}: loading {Path}", engine.Name, path);
        ILanguageModel? model = null;
        IStepKernels? kernels = null;
        DecodingEngine? decoding = null;
        try
        {
            model = settings.ModelFactory is { } factory
                ? factory() ?? throw new InvalidOperationException("the model factory returned null")
                : Tilt.Engine.Models.Loading.LanguageModel.Load(path, new GgufLoadOptions
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
            var error = new TiltException($"{key}: cannot load {path}: {e.Message}", e);
            engine.Fail(error);
            throw error;
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

    /// <summary>The engines in configuration order, and every name and alias that leads to one.</summary>
    private sealed record ByName(IReadOnlyList<TiltEngine> Configured, Dictionary<string, TiltEngine> Names);
}
