using Tilt.Engine.Models;

namespace Tilt.Engine.Decoding;

/// <summary>Capacity and admission settings of a <see cref="DecodingEngine"/> (one per loaded model).</summary>
public sealed record EngineOptions
{
    /// <summary>Sequences the engine's one llama context holds at once, over all requests. 1..256. Defaults to 64.</summary>
    public int MaxSequences
    {
        get;
        init => field = value is >= 1 and <= SessionOptions.MaxSupportedSequences
            ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxSequences), value,
                $"max sequences must be between 1 and {SessionOptions.MaxSupportedSequences} (llama.cpp's limit per context), got {value}");
    } = 64;

    /// <summary>
    /// Tokens one sequence may hold (prompt + generated + one spare). A request whose prompt plus max tokens does not fit
    /// is refused with an error naming this limit. Defaults to 512.
    /// </summary>
    public int MaxSequenceLength
    {
        get;
        init => field = value is >= 2 and <= 1 << 20
            ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxSequenceLength), value, $"max sequence length must be between 2 and {1 << 20}, got {value}");
    } = 512;

    /// <summary>
    /// Requests that may wait for capacity. A request arriving when the queue is full is refused at once with
    /// <see cref="EngineBusyException"/>. 0..100000. Defaults to 256.
    /// </summary>
    public int MaxQueuedRequests
    {
        get;
        init => field = value is >= 0 and <= 100_000
            ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxQueuedRequests), value, $"the queue limit must be between 0 and 100000, got {value}");
    } = 256;

    /// <summary>
    /// The model's name in telemetry (<c>gen_ai.request.model</c> on the engine's metrics and activities). Defaults to null:
    /// the model file's name without its extension.
    /// </summary>
    public string? ModelName { get; init; }

    /// <summary>
    /// Prompt tokens per llama_decode call when a prompt is prefilled (a longer prompt takes several calls in the iteration
    /// that loads it). 1..4096. Defaults to 512.
    /// </summary>
    public int PrefillChunk
    {
        get;
        init => field = SessionOptions.CheckPrefillChunk(value, nameof(PrefillChunk));
    } = 512;

    /// <summary>
    /// Prompts whose KV the engine keeps in otherwise free sequences, so a request with a prompt seen before copies it
    /// instead of prefilling. 0..256. Defaults to 8.
    /// </summary>
    public int PromptCacheEntries
    {
        get;
        init => field = value is >= 0 and <= SessionOptions.MaxSupportedSequences
            ? value
            : throw new ArgumentOutOfRangeException(nameof(PromptCacheEntries), value, $"prompt cache entries must be between 0 and {SessionOptions.MaxSupportedSequences}, got {value}");
    } = 8;

    /// <summary>
    /// How the engine's sequences share the KV pool. <see cref="KvLayout.PerSequence"/> (the default) gives each sequence its
    /// own cells, so a query scans only its own sequence whatever else runs (see docs/performance.md for the measurement);
    /// <see cref="KvLayout.Shared"/> makes forks free but every query scans the whole pool.
    /// </summary>
    public KvLayout KvLayout { get; init; } = KvLayout.PerSequence;

    /// <summary>
    /// Whether the scheduler moves sequences into free places when the ids of a decode's rows fragment (requests finishing,
    /// early rejection, cancellations), so that llama.cpp decodes them as one micro-batch instead of one per run of
    /// consecutive ids (docs/architecture.md, "Sequence ids"). Only the per-sequence layout splits at gaps; moving never
    /// changes an output. Defaults to true.
    /// </summary>
    public bool CompactSequences { get; init; } = true;

    /// <summary>
    /// Rewards and reward-backed values scored at once, beside the scheduler (docs/architecture.md, "Scoring stage"): a
    /// slow reward holds its own request, never the others' decoding. Rewards shared by requests are called from several
    /// threads when this is above 1 (built-in rewards are thread-safe). 0 scores on the scheduler's own thread, as the engine
    /// did before the stage (every request waits for every score; for comparison, or for rewards that must never leave one
    /// thread). 0..64. Defaults to 2.
    /// </summary>
    public int ScoringThreads
    {
        get;
        init => field = value is >= 0 and <= 64
            ? value
            : throw new ArgumentOutOfRangeException(nameof(ScoringThreads), value, $"scoring threads must be between 0 and 64, got {value}");
    } = 2;

    /// <summary>
    /// How long the scheduler waits for a reward-backed value it has just started before it moves on without that request
    /// (which then waits for its value alone, resuming at the first iteration after it; the others lose at most this per
    /// such value). A lexicon or regex value over a step's candidates takes microseconds and comes back in step; anything
    /// slower parks its own request rather than the batch (measured in docs/performance.md, "Scoring stage": waiting as
    /// long as a decode cost the others a third of their throughput beside a 50 ms reward on the 15M model). 0..10 s.
    /// Defaults to 1 ms.
    /// </summary>
    public TimeSpan ScoringPatience
    {
        get;
        init => field = value >= TimeSpan.Zero && value <= TimeSpan.FromSeconds(10)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(ScoringPatience), value, $"scoring patience must be between 0 and 10 s, got {value}");
    } = TimeSpan.FromMilliseconds(1);

    /// <summary>KV cache element type (F32 makes outputs independent of the batch's composition to float rounding). Defaults to F16.</summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F16;

    /// <summary>
    /// CPU threads for llama.cpp, 1..the logical CPUs; null = <see cref="CpuTopology.DefaultThreads"/> (every physical core).
    /// Defaults to null.
    /// </summary>
    public int? Threads
    {
        get;
        init => field = CpuTopology.CheckThreads(value, nameof(Threads));
    }
}

/// <summary>The engine's queue is full: retry later (HTTP 429/503, C API TILT_ERR_BUSY).</summary>
public sealed class EngineBusyException : TiltException
{
    public EngineBusyException(int queued, int limit)
        : base($"the engine is busy: {queued} requests are already waiting (the queue holds at most {limit}); retry later")
    {
        Queued = queued;
        Limit = limit;
    }

    public int Queued { get; }
    public int Limit { get; }
}

/// <summary>The engine is stopping (or stopped) and admits no new request (HTTP 503, C API TILT_ERR_BUSY).</summary>
public sealed class EngineStoppingException : TiltException
{
    public EngineStoppingException() : base("the engine is shutting down and admits no new requests") { }
}

/// <summary>A snapshot of a <see cref="DecodingEngine"/>'s load.</summary>
/// <param name="QueuedRequests">Requests waiting for capacity.</param>
/// <param name="RunningRequests">Admitted requests.</param>
/// <param name="LiveSequences">Sequences in use over all admitted requests.</param>
/// <param name="MaxSequences">The engine's capacity in sequences.</param>
/// <param name="Iterations">Scheduler iterations so far (one batched decode each).</param>
/// <param name="TokensDecoded">Tokens decoded by the scheduler's batched steps so far (prefills not included).</param>
/// <param name="CachedPromptTokens">Prompt tokens served from the prompt cache instead of a prefill.</param>
/// <param name="DecodeTime">Time inside the batched decode calls (llama_decode) so far.</param>
/// <param name="BusyTime">Time of whole scheduler iterations so far: BusyTime - DecodeTime is the engine's own per-step work
/// (prefills, KV moves, value scoring, sampling kernels, step functions, rewards).</param>
/// <param name="Decodes">Batched decodes so far.</param>
/// <param name="DecodeRuns">Runs of consecutive sequence ids summed over those decodes: with the per-sequence KV layout
/// llama.cpp evaluates each run as its own micro-batch, reading all the weights again, so DecodeRuns / Decodes near 1 is
/// the healthy value (a regression in the id placement shows here first).</param>
/// <param name="LastDecodeRuns">Runs of consecutive sequence ids in the most recent decode.</param>
/// <param name="SequenceMoves">Sequences the scheduler moved to keep decoded ids dense (one KV copy each).</param>
/// <param name="ScoringJobs">Reward and reward-backed value computations run beside the scheduler (the scoring stage).</param>
/// <param name="ScoringParked">Of those, the ones the scheduler moved on without (their request waited alone while the
/// others decoded): a high share means a reward slower than a decode.</param>
public sealed record EngineStatus(int QueuedRequests, int RunningRequests, int LiveSequences, int MaxSequences, long Iterations, long TokensDecoded,
    long CachedPromptTokens, TimeSpan DecodeTime, TimeSpan BusyTime, long Decodes = 0, long DecodeRuns = 0, int LastDecodeRuns = 0,
    long SequenceMoves = 0, long ScoringJobs = 0, long ScoringParked = 0)
{
    /// <summary>Average micro-batches per decode (DecodeRuns / Decodes); 0 before the first decode.</summary>
    public double RunsPerDecode => Decodes == 0 ? 0 : (double)DecodeRuns / Decodes;
}
