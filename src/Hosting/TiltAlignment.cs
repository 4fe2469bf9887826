using Tilt.Engine.Requests;
using Tilt.Engine.Rewards;

namespace Tilt.Hosting;

/// <summary>
/// Alignment settings of one chat request through <see cref="TiltChatClient"/>: put it in
/// <c>ChatOptions.AdditionalProperties["alignment"]</c> (<see cref="PropertyName"/>). Without it, or with
/// <c>Strategy = DecodingStrategy.Generate</c>, a request is plain generation. The strategy and its fields (<c>N</c>,
/// <c>K</c>, <c>Block</c>, <c>TopK</c>, <c>Beta</c>, <c>Alpha</c>, <c>Every</c>, <c>DecideAt</c>, <c>Lambda</c>, <c>Selection</c>,
/// <c>ReturnCandidates</c>, <c>DeadlineMs</c>) are the strategy catalogue's <see cref="StrategySpec"/>; a chat returns one
/// output, so <c>Samples</c> must stay unset or 1. Unset numbers take the engine's defaults (best-of-n N = 4; rejection
/// N = 16; blockwise K = 8, block 8; token-wise top-k 16; beta 1; lambda 1); set ones are checked as every front-end
/// checks them, and an error names the property (<c>TiltAlignment.K must be between 1 and 256, got 0</c>).
/// </summary>
/// <example>
/// <code>
/// var options = new ChatOptions { MaxOutputTokens = 48 };
/// options.AdditionalProperties = new() { [TiltAlignment.PropertyName] = new TiltAlignment { Strategy = DecodingStrategy.BestOfN, N = 8, Reward = "lexicon:sentiment" } };
/// </code>
/// </example>
public sealed record TiltAlignment : StrategySpec
{
    /// <summary>The key of <c>ChatOptions.AdditionalProperties</c> (and of the response's) that carries alignment.</summary>
    public const string PropertyName = "alignment";

    /// <summary>The reward spec used when neither <see cref="Reward"/> nor <see cref="RewardFunction"/> is given.</summary>
    public const string DefaultReward = "lexicon:sentiment";

    /// <summary>A reward spec (<c>RewardSpec.Parse</c>), e.g. <c>lexicon:positive</c> or <c>0.7*lexicon:sentiment+0.3*length:40</c>;
    /// defaults to <see cref="DefaultReward"/>. Ignored when <see cref="RewardFunction"/> is set.</summary>
    public string? Reward { get; init; }

    /// <summary>A reward object of the host's own (a callback, a trained head); takes precedence over <see cref="Reward"/>.</summary>
    public IReward? RewardFunction { get; init; }

    /// <summary>The property of a catalogue field: <c>top_k</c> -> <c>TopK</c>.</summary>
    internal static string PropertyOf(string field) =>
        string.Concat(field.Split('_').Select(part => part.Length == 0 ? part : char.ToUpperInvariant(part[0]) + part[1..]));
}

/// <summary>
/// What alignment did for one response: in <c>ChatResponse.AdditionalProperties["alignment"]</c> (and on the last
/// streaming update). The engine's whole <see cref="AlignedSample"/> is the response's <c>RawRepresentation</c>.
/// </summary>
/// <param name="Strategy">The strategy that produced it.</param>
/// <param name="Reward">r(x, y) of the returned text; NaN for plain generation.</param>
/// <param name="LogProb">log p(y | x) under the base model.</param>
/// <param name="Kl">KL estimate or bound in nats, its method and band, named as the HTTP API names them (snake_case).</param>
/// <param name="KlMethod">How <paramref name="Kl"/> was obtained (<c>best_of_n_estimate</c>, <c>step_drift_sum</c>, ...).</param>
/// <param name="KlBand">The rule-of-thumb band of <paramref name="Kl"/> (<c>fine</c>, <c>caution</c>, ...).</param>
/// <param name="KlBound">An upper bound on the KL where the strategy has one, else null.</param>
/// <param name="TokensEvaluated">Tokens the model decoded for this output (the compute cost).</param>
/// <param name="Candidates">Best-of-n / rejection candidates on <see cref="StrategySpec.ReturnCandidates"/>; else empty.</param>
public sealed record TiltAlignmentResult(
    DecodingStrategy Strategy,
    double Reward,
    double LogProb,
    double Kl,
    string KlMethod,
    string KlBand,
    double? KlBound,
    long TokensEvaluated,
    IReadOnlyList<ScoredCandidate> Candidates);
