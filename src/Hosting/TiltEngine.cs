using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Requests;

namespace Tilt.Hosting;

/// <summary>
/// One configured model's engine, as the host sees it: loaded when the host starts, stopped with a drain when it stops.
/// Inject <see cref="ITiltEngines"/> and take one by name. Thread-safe: concurrent requests on one model share batches.
/// </summary>
public sealed class TiltEngine
{
    private const int NotLoaded = 0, Loaded = 1, Stopped = 2;

    private DecodingEngine? _engine;
    private ILanguageModel? _model;
    private int _state;

    internal TiltEngine(string name, TiltModelOptions settings)
    {
        Name = name;
        Settings = settings;
    }

    /// <summary>The model's name in <see cref="TiltOptions.Models"/>.</summary>
    public string Name { get; }

    /// <summary>The settings it was loaded with.</summary>
    public TiltModelOptions Settings { get; }

    /// <summary>True between a successful start and the start of stopping.</summary>
    public bool IsLoaded => Volatile.Read(ref _state) == Loaded;

    /// <summary>The loaded model (vocabulary, special tokens, hidden size).</summary>
    /// <exception cref="InvalidOperationException">The host has not started the engine (or failed to).</exception>
    public ModelInfo Model => (_model ?? throw NotStarted()).Info;

    /// <summary>
    /// The loaded language model itself, for what needs it beside requests (for example a <c>head:</c> reward that reads its
    /// hidden states). Owned by the host: do not dispose it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The host has not started the engine (or failed to).</exception>
    public ILanguageModel LanguageModel => _model ?? throw NotStarted();

    /// <summary>Current load: queued and running requests, live sequences, iterations; null before the engine is loaded.</summary>
    public EngineStatus? Status => _engine?.Status;

    /// <summary>All outputs of a request, in sample order (<see cref="DecodingEngine.RunAsync"/>).</summary>
    /// <exception cref="InvalidOperationException">The host has not started the engine.</exception>
    /// <exception cref="EngineStoppingException">The host is stopping.</exception>
    /// <exception cref="EngineBusyException">The queue is full (<see cref="TiltModelOptions.MaxQueuedRequests"/>).</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled, or the host stopped before the request finished.</exception>
    public Task<IReadOnlyList<AlignedSample>> RunAsync(DecodingRequest request, CancellationToken cancellationToken = default) =>
        Running().RunAsync(request, cancellationToken);

    /// <summary>
    /// Streams a request's events as they happen (<see cref="DecodingEngine.StreamAsync"/>): accepted text, scored candidates,
    /// finished samples. Leaving the loop early cancels the request. Errors as for <see cref="RunAsync"/>.
    /// </summary>
    public IAsyncEnumerable<AlignEvent> StreamAsync(DecodingRequest request, CancellationToken cancellationToken = default) =>
        Running().StreamAsync(request, cancellationToken);

    /// <summary>
    /// Scores a given text after a prompt by teacher forcing, batched with the engine's other requests
    /// (<see cref="DecodingEngine.ScoreAsync"/>): per-token log p, alternatives, greedy flag. Errors as for <see cref="RunAsync"/>.
    /// </summary>
    public Task<ScoreResult> ScoreAsync(string prompt, string continuation, int topLogprobs = 0, bool includePrompt = false,
        CancellationToken cancellationToken = default) =>
        Running().ScoreAsync(prompt, continuation, topLogprobs, includePrompt, cancellationToken);

    internal void Start(ILanguageModel model, DecodingEngine engine)
    {
        _model = model;
        _engine = engine;
        Volatile.Write(ref _state, Loaded);
    }

    /// <summary>Marks the engine stopping (new requests get <see cref="EngineStoppingException"/>) and returns it, or null.</summary>
    internal DecodingEngine? BeginStop()
    {
        Volatile.Write(ref _state, Stopped);
        return _engine;
    }

    private DecodingEngine Running() => Volatile.Read(ref _state) switch
    {
        Loaded => _engine!,
        Stopped => throw new EngineStoppingException(),
        _ => throw NotStarted(),
    };

    private InvalidOperationException NotStarted() =>
        new($"the Tilt model '{Name}' is not loaded: the host has not started yet (or its start failed)");
}
