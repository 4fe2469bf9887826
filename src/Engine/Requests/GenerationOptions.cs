using Tilt.Engine.Models;

namespace Tilt.Engine.Requests;

/// <summary>Options of a base-model generation request.</summary>
public sealed record GenerationOptions : DecodingOptions
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
}
