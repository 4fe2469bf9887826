using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Engine.Sampling;

/// <summary>Options of a base-model generation request.</summary>
public sealed record GenerationOptions
{
    /// <summary>Parallel samples (K), decoded as one batch that shares the prompt's KV cache. 1..256. Defaults to 1.</summary>
    public int Samples
    {
        get;
        init => field = value is >= 1 and <= SessionOptions.MaxSupportedSequences
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Samples), value,
                $"the number of samples must be between 1 and {SessionOptions.MaxSupportedSequences}, got {value}");
    } = 1;

    /// <summary>Generated tokens per sample at most (EOS included). Defaults to 128.</summary>
    public int MaxTokens
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxTokens), value, $"max tokens must be at least 1, got {value}");
    } = 128;

    /// <summary>Seed of the counter-based RNG; the same seed gives the same samples. Defaults to 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>Request id mixed into the RNG key, so requests sharing a seed can differ. Defaults to 0.</summary>
    public uint RequestId { get; init; }

    /// <summary>Temperature / top-k / top-p of every sample. Defaults to plain sampling from p (T = 1).</summary>
    public SamplingParameters Sampling
    {
        get;
        init
        {
            value.Validate();
            field = value;
        }
    } = new();

    /// <summary>CPU threads for llama.cpp; null lets it choose. Defaults to null.</summary>
    public int? Threads { get; init; }

    /// <summary>KV cache element type of the session. Defaults to F16.</summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F16;
}
