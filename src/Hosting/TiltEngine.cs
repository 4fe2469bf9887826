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
    private DecodingEngine? _engine;
    private ILanguageModel? _model;
    private int _state; // a TiltEngineState

    internal TiltEngine(string name, TiltModelOptions settings)
    {
        Name = name;
        Settings = settings;
    }

    /// <summary>The model's name in <see cref="TiltOptions.Models"/>.</summary>
    public string Name { get; }

    /// <summary>The settings it was loaded with.</summary>
    public TiltModelOptions Settings { get; }

    /// <summary>Other names the model answers to in <see cref="ITiltEngines"/> (<see cref="TiltModelOptions.Aliases"/>).</summary>
    public IReadOnlyList<string> Aliases => Settings.Aliases;

    /// <summary>Where the engine is in its life: loading, loaded, failed to load, stopped.</summary>
    public TiltEngineState State => (TiltEngineState)Volatile.Read(ref _state);

    /// <summary>True between a successful start and the start of stopping.</summary>
    public bool IsLoaded => State == TiltEngineState.Loaded;

    /// <summary>Why the model could not be loaded (a <see cref="Tilt.Engine.TiltException"/> naming the setting), or null.</summary>
    public Exception? LoadError { get; private set; }

    /// <summary>
    /// True while the engine is loaded and a new one-sequence request would be refused with <see cref="EngineBusyException"/>:
    /// the waiting room is full, or (with <see cref="TiltModelOptions.MaxQueuedRequests"/> 0) every sequence is taken. The
    /// one rule behind the health check's Degraded and a server's "busy" readiness.
    /// </summary>
    public bool IsFull =>
        IsLoaded && Status is { } s && s.QueuedRequests >= Settings.MaxQueuedRequests && (s.QueuedRequests > 0 || s.LiveSequences >= s.MaxSequences);

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
        // A stop that came first wins: the engine was released with the rest (TiltEngines.Release).
        Interlocked.CompareExchange(ref _state, (int)TiltEngineState.Loaded, (int)TiltEngineState.Loading);
    }

    internal void Fail(Exception error)
    {
        LoadError = error;
        Interlocked.CompareExchange(ref _state, (int)TiltEngineState.Failed, (int)TiltEngineState.Loading);
    }

    /// <summary>Marks the engine stopping (new requests get <see cref="EngineStoppingException"/>) and returns it, or null.</summary>
    internal DecodingEngine? BeginStop()
    {
        Volatile.Write(ref _state, (int)TiltEngineState.Stopped);
        return _engine;
    }

    private DecodingEngine Running() => State switch
    {
        TiltEngineState.Loaded => _engine!,
        TiltEngineState.Stopped => throw new EngineStoppingException(),
        _ => throw NotStarted(),
    };

    private InvalidOperationException NotStarted() => State == TiltEngineState.Failed
        ? new($"the Tilt model '{Name}' is not loaded: {LoadError?.Message}", LoadError)
        : new($"the Tilt model '{Name}' is not loaded: the host has not started yet (or its start failed)");
}

/// <summary>Where a <see cref="TiltEngine"/> is in its life.</summary>
public enum TiltEngineState
{
    /// <summary>Not loaded yet: the host has not started, or is loading it (<see cref="TiltOptions.LoadInBackground"/>).</summary>
    Loading,

    /// <summary>Loaded: requests are admitted.</summary>
    Loaded,

    /// <summary>The model could not be loaded (<see cref="TiltEngine.LoadError"/>); only a restart helps.</summary>
    Failed,

    /// <summary>The host is stopping or stopped: no new requests.</summary>
    Stopped,
}
