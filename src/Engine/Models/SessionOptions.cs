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

    /// <summary>CPU threads for decoding; null lets llama.cpp choose. Defaults to null.</summary>
    public int? Threads
    {
        get;
        init => field = value is null or >= 1
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Threads), value, $"threads must be at least 1, got {value}");
    }
}

/// <summary>Element type of a session's KV cache.</summary>
public enum KvCacheType
{
    F16,
    F32,
}
