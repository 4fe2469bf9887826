namespace Tilt.Engine.Models;

/// <summary>Sizing of a batched decoding session.</summary>
public sealed record SessionOptions
{
    /// <summary>llama.cpp's hard limit on sequences in one context.</summary>
    public const int MaxSupportedSequences = 256;

    /// <summary>Number of sequences the session can hold at once (K). 1..256. Defaults to 1.</summary>
    public int MaxSequences
    {
        get;
        init => field = value is >= 1 and <= MaxSupportedSequences
            ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxSequences), value,
                $"the number of parallel sequences must be between 1 and {MaxSupportedSequences} (llama.cpp's limit per context), got {value}");
    } = 1;

    /// <summary>
    /// Tokens one sequence may hold: prompt plus generated tokens. The session's context is sized
    /// MaxSequences x this (non-unified KV: each sequence owns its own cells). Defaults to 512.
    /// </summary>
    public int MaxSequenceLength
    {
        get;
        init => field = value >= 1
            ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxSequenceLength), value, $"the sequence length must be at least 1, got {value}");
    } = 512;

    /// <summary>
    /// Element type of the KV cache. <see cref="KvCacheType.F16"/> (llama.cpp's default) halves its memory;
    /// <see cref="KvCacheType.F32"/> makes a sequence decoded in a batch match the same sequence decoded
    /// alone to float rounding (measured &lt; 1e-5 in logits over many steps), where F16 rounding of the
    /// cached keys turns the batch's different summation order into differences up to ~1e-3.
    /// Defaults to F16.
    /// </summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F16;

    /// <summary>
    /// Prompt tokens per llama_decode call of a prefill (and the least llama.cpp batch size the context is made with).
    /// 1..4096. Defaults to 512.
    /// </summary>
    public int PrefillChunk
    {
        get;
        init => field = CheckPrefillChunk(value, nameof(PrefillChunk));
    } = 512;

    /// <summary>
    /// The one check of a count of sequences decoded together (candidates, blocks, samples, a batch): 1..
    /// <see cref="MaxSupportedSequences"/>, else an error naming <paramref name="param"/> ("{label} must be between 1 and 256, got 300").
    /// </summary>
    public static int CheckSequences(int value, string param, string label) =>
        value is >= 1 and <= MaxSupportedSequences
            ? value
            : throw new ArgumentOutOfRangeException(param, value, $"{label} must be between 1 and {MaxSupportedSequences}, got {value}");

    /// <summary>The one check of a prefill chunk (the engine's option forwards here): 1..4096 tokens.</summary>
    internal static int CheckPrefillChunk(int value, string name) =>
        value is >= 1 and <= 4096
            ? value
            : throw new ArgumentOutOfRangeException(name, value, $"the prefill chunk must be between 1 and 4096 tokens, got {value}");

    /// <summary>
    /// How sequences share the KV cache. <see cref="KvLayout.PerSequence"/> gives each sequence its own cells
    /// (fastest for K independent continuations: a query scans only its own sequence); copying a sequence
    /// copies its cells. <see cref="KvLayout.Shared"/> keeps one pool where a copy only tags cells with another
    /// sequence id (free), which suits strategies whose sequences share a long prefix (controlled decoding);
    /// there a query scans every cell in the pool. Defaults to PerSequence.
    /// </summary>
    public KvLayout KvLayout { get; init; } = KvLayout.PerSequence;

    /// <summary>
    /// With <see cref="KvLayout.Shared"/>: cells reserved per sequence beyond MaxSequenceLength (room for tokens a
    /// sequence holds that the others do not, e.g. a candidate block). Defaults to 16.
    /// </summary>
    public int SharedCellsPerSequence
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(SharedCellsPerSequence), value, "must be at least 1");
    } = 16;

    /// <summary>
    /// CPU threads for decoding, 1..the logical CPUs; null = <see cref="CpuTopology.DefaultThreads"/> (every physical core).
    /// Defaults to null.
    /// </summary>
    public int? Threads
    {
        get;
        init => field = CpuTopology.CheckThreads(value, nameof(Threads));
    }
}

/// <summary>Element type of a session's KV cache.</summary>
public enum KvCacheType
{
    F16,
    F32,
}

/// <summary>How a session's sequences share the KV cache (see <see cref="SessionOptions.KvLayout"/>).</summary>
public enum KvLayout
{
    /// <summary>Each sequence owns MaxSequenceLength cells (llama.cpp non-unified KV).</summary>
    PerSequence,

    /// <summary>
    /// One pool of MaxSequenceLength + SharedCellsPerSequence x MaxSequences cells shared by every sequence
    /// (llama.cpp unified KV): room for a shared prefix plus a few private tokens per sequence.
    /// </summary>
    Shared,
}
