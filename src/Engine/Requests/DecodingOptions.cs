using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Engine.Requests;

/// <summary>What every request that decodes from the base model shares: length, randomness, proposals, resources.</summary>
public abstract record DecodingOptions
{
    /// <summary>Generated tokens per sequence at most (stop token included). Defaults to 128.</summary>
    public int MaxTokens
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxTokens), value, $"max tokens must be at least 1, got {value}");
    } = 128;

    /// <summary>Seed of the counter-based RNG; the same seed gives the same tokens. Defaults to 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>Request id mixed into the RNG key, so requests sharing a seed can differ. Defaults to 0.</summary>
    public uint RequestId { get; init; }

    /// <summary>
    /// How the base model proposes tokens (temperature, top-k, top-p of p). Defaults to p itself (T = 1), which is what
    /// log-probabilities, values [M13] and KL figures assume.
    /// </summary>
    public SamplingParameters Sampling
    {
        get;
        init
        {
            value.Validate();
            field = value;
        }
    } = new();

    /// <summary>
    /// Stop strings and stop token ids that end each sequence like EOS (every strategy honours them: candidates end at their
    /// own stop, controlled decoding ends the output when its accepted text hits one). Defaults to none.
    /// </summary>
    public StopSequences? Stop { get; init; }

    /// <summary>
    /// Report log p(token | prefix) at T = 1 of every output token (<see cref="AlignedSample.TokenLogProbs"/>,
    /// <see cref="TextAccepted.TokenLogProbs"/>). Costs a list entry per token. Defaults to false.
    /// </summary>
    public bool Logprobs { get; init; }

    /// <summary>
    /// Alternatives per output token: the N most likely tokens of the same row with their log p at T = 1, 0..20 (one top-N
    /// pass in the step's sampling call, on the rows of requests that ask). Implies <see cref="Logprobs"/>. Defaults to 0.
    /// </summary>
    public int TopLogprobs
    {
        get;
        init => field = value is >= 0 and <= Kernels.TopLogProbs.MaxN
            ? value
            : throw new ArgumentOutOfRangeException(nameof(TopLogprobs), value, $"top logprobs must be between 0 and {Kernels.TopLogProbs.MaxN}, got {value}");
    }
}
