using Tilt.Engine.Rewards;
using Tilt.Engine.Values;

namespace Tilt.Engine.Requests;

/// <summary>
/// One request to a <see cref="Tilt.Engine.Decoding.DecodingEngine"/>: a prompt, the strategy's options and the reward/value it steers by.
/// The options' type selects the strategy: <see cref="GenerationOptions"/> (plain sampling from p, K samples in one
/// batch), <see cref="BestOfNOptions"/>, <see cref="TokenwiseOptions"/>, <see cref="BlockwiseOptions"/> or <see cref="RejectionOptions"/>.
/// </summary>
public sealed record DecodingRequest
{
    /// <summary>The prompt text (tokenized by the engine's model, BOS added when the model wants one).</summary>
    public required string Prompt { get; init; }

    /// <summary>
    /// The prompt's tokens when the caller has them already (a server that tokenized the prompt to check its limits), so
    /// the engine does not tokenize it again: exactly what the model's tokenizer gives for <see cref="Prompt"/> (BOS first
    /// where the model adds one). Null (the default): the engine tokenizes <see cref="Prompt"/>.
    /// </summary>
    public IReadOnlyList<int>? PromptTokens { get; init; }

    /// <summary>What to run; its type is the strategy.</summary>
    public required DecodingOptions Options { get; init; }

    /// <summary>
    /// The reward r(x, y). Required by the aligned strategies; optional for plain generation, where it only scores the
    /// outputs (their <see cref="AlignedSample.Reward"/> is NaN without one).
    /// </summary>
    public IReward? Reward { get; init; }

    /// <summary>
    /// V(x, y^t) for token-wise and blockwise CD. Defaults to the reward applied to the unfinished prefix
    /// (<see cref="PrefixRewardValue"/>).
    /// </summary>
    public IValueFunction? Value { get; init; }

    /// <summary>
    /// Text the response starts with, forced rather than sampled (a prefilling attack, or a fixed opening): it is decoded
    /// after the prompt, streamed first, included in the returned text and tokens and seen by the reward, and excluded from
    /// log p and KL (it was not sampled). It is tokenized on its own (llama-style tokenizers then start it with a space).
    /// Values that read text see the generated part. Defaults to none.
    /// </summary>
    public string? ForcedPrefix { get; init; }

    /// <summary>The strategy the options select.</summary>
    public DecodingStrategy Strategy => Options switch
    {
        GenerationOptions => DecodingStrategy.Generate,
        BestOfNOptions => DecodingStrategy.BestOfN,
        SoftBestOfNOptions => DecodingStrategy.SoftBestOfN,
        TokenwiseOptions => DecodingStrategy.Tokenwise,
        BlockwiseOptions => DecodingStrategy.Blockwise,
        RejectionOptions => DecodingStrategy.Rejection,
        BeamOptions => DecodingStrategy.Beam,
        ScoringOptions => DecodingStrategy.Score,
        _ => throw new ArgumentException($"unsupported options type {Options.GetType().Name}", nameof(Options)),
    };

    /// <summary>Checks the request before it is queued; throws <see cref="ArgumentException"/> naming the field.</summary>
    internal void Validate(int vocabulary = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(Prompt, nameof(Prompt));
        ArgumentNullException.ThrowIfNull(Options, nameof(Options));
        var strategy = Strategy;
        if (strategy is not (DecodingStrategy.Generate or DecodingStrategy.Score) && Reward is null)
            throw new ArgumentException($"the {strategy} strategy needs a reward (only plain generation runs without one)", nameof(Reward));
        if (Options is BeamOptions beam) beam.ValidateBeams();
        if (Options.Stop is { } stop)
            foreach (int id in stop.TokenIds)
                if (id >= vocabulary)
                    throw new ArgumentOutOfRangeException(nameof(Options), id, $"stop token id {id} is outside the vocabulary (0..{vocabulary - 1})");
    }
}

/// <summary>The decoding strategies of the engine.</summary>
public enum DecodingStrategy
{
    /// <summary>Plain sampling from the base model (K samples in one batch).</summary>
    Generate,

    /// <summary>Best-of-n [M4].</summary>
    BestOfN,

    /// <summary>Token-wise controlled decoding [M14].</summary>
    Tokenwise,

    /// <summary>Blockwise controlled decoding [M18].</summary>
    Blockwise,

    /// <summary>Early rejection: best-of-N that stops its weakest candidates early (docs/rejection.md).</summary>
    Rejection,

    /// <summary>Scoring a given text by teacher forcing (<see cref="ScoringOptions"/>); nothing is generated.</summary>
    Score,

    /// <summary>Soft best-of-n [M27]: the winner drawn with probability proportional to exp(r / lambda).</summary>
    SoftBestOfN,

    /// <summary>Reward-guided beam search over blocks [M29]: the best B of K blocks kept at every step.</summary>
    Beam,
}
