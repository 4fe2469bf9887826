using System.Globalization;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Evaluation;

/// <summary>Which strategy a sweep point runs.</summary>
public enum EvaluationMethod
{
    BestOfN,
    Blockwise,
    Tokenwise,

    /// <summary>Early rejection: N candidates, alpha (in <see cref="EvaluationConfig.Beta"/>) stopped every M tokens.</summary>
    Rejection,

    /// <summary>Soft best-of-n [M27]: N candidates, the winner drawn ∝ exp(r / lambda), lambda in <see cref="EvaluationConfig.Beta"/>.</summary>
    SoftBestOfN,

    /// <summary>Reward-guided beam search [M29]: B beams (in <see cref="EvaluationConfig.N"/>), K blocks of M tokens per step.</summary>
    Beam,
}

/// <summary>One configuration of a sweep: a strategy and its parameters.</summary>
/// <param name="Method">The strategy.</param>
/// <param name="N">Best-of-n and rejection: candidates; beam search: beams kept (B).</param>
/// <param name="K">Blockwise and beam search: candidate blocks; token-wise: candidate tokens (0 = vocabulary).</param>
/// <param name="M">Blockwise and beam search: tokens per block; rejection: tokens between decisions.</param>
/// <param name="Beta">Token-wise: tilt strength; rejection: alpha, the fraction stopped at each decision; soft best-of-n: lambda.</param>
public sealed record EvaluationConfig(EvaluationMethod Method, int N = 0, int K = 0, int M = 0, double Beta = 0)
{
    /// <summary>Stable identifier, used to resume a sweep (e.g. "bon-n8", "blockwise-k4-m8", "tokenwise-b0.5-k16", "beam-b2-k8-m8").</summary>
    public string Id => Method switch
    {
        EvaluationMethod.BestOfN => $"bon-n{N}",
        EvaluationMethod.Blockwise => $"blockwise-k{K}-m{M}",
        EvaluationMethod.Rejection => string.Create(CultureInfo.InvariantCulture, $"rejection-n{N}-a{Beta:R}-e{M}"),
        EvaluationMethod.SoftBestOfN => string.Create(CultureInfo.InvariantCulture, $"soft-bon-n{N}-l{Beta:R}"),
        EvaluationMethod.Beam => $"beam-b{N}-k{K}-m{M}",
        _ => string.Create(CultureInfo.InvariantCulture, $"tokenwise-b{Beta:R}-k{K}"),
    };

    /// <summary>The series a point is drawn in.</summary>
    public string Series => Method switch
    {
        EvaluationMethod.BestOfN => "best-of-n",
        EvaluationMethod.Blockwise => $"blockwise CD (M={M})",
        EvaluationMethod.Rejection => string.Create(CultureInfo.InvariantCulture, $"rejection (alpha={Beta}, every {M})"),
        EvaluationMethod.SoftBestOfN => string.Create(CultureInfo.InvariantCulture, $"soft best-of-n (lambda={Beta})"),
        EvaluationMethod.Beam => $"beam search (B={N}, M={M})",
        _ => "token-wise CD",
    };

    /// <summary>The point as the strategy catalogue's fields (<see cref="StrategyFields"/>); its options come from there.</summary>
    public StrategySpec Spec => Method switch
    {
        EvaluationMethod.BestOfN => new StrategySpec { Strategy = DecodingStrategy.BestOfN, N = N },
        EvaluationMethod.SoftBestOfN => new StrategySpec { Strategy = DecodingStrategy.SoftBestOfN, N = N, Lambda = Beta },
        EvaluationMethod.Rejection => new StrategySpec { Strategy = DecodingStrategy.Rejection, N = N, Alpha = Beta, Every = M },
        EvaluationMethod.Blockwise => new StrategySpec { Strategy = DecodingStrategy.Blockwise, K = K, Block = M },
        EvaluationMethod.Beam => new StrategySpec { Strategy = DecodingStrategy.Beam, Beams = N, K = K, Block = M },
        _ => new StrategySpec { Strategy = DecodingStrategy.Tokenwise, TopK = K, Beta = Beta },
    };

    /// <summary>
    /// The configuration as it runs on outputs of <paramref name="maxTokens"/> tokens: rejection decides every 8 tokens,
    /// and for shorter outputs four times over the output instead (a decision interval must be shorter than the output).
    /// </summary>
    public EvaluationConfig FitTo(int maxTokens) =>
        Method == EvaluationMethod.Rejection && M >= maxTokens ? this with { M = Math.Max(1, maxTokens / 4) } : this;

    /// <summary>
    /// The full sweep of the issue: best-of-n n in {1..64}, blockwise K x M, token-wise over a beta grid; then the
    /// strategies added since (rejection, soft best-of-n, beam search with B in {2, 4} over K in {4, 8, 16} at M = 8).
    /// Points are only ever added, so a folder of an earlier sweep resumes.
    /// </summary>
    public static IReadOnlyList<EvaluationConfig> FullSweep(int tokenwiseCandidates) =>
    [
        .. new[] { 1, 2, 4, 8, 16, 32, 64 }.Select(n => new EvaluationConfig(EvaluationMethod.BestOfN, N: n)),
        .. from m in new[] { 4, 8, 16 } from k in new[] { 2, 4, 8, 16 } select new EvaluationConfig(EvaluationMethod.Blockwise, K: k, M: m),
        .. new[] { 4.0, 2.0, 1.0, 0.5, 0.25 }.Select(b => new EvaluationConfig(EvaluationMethod.Tokenwise, K: tokenwiseCandidates, Beta: b)),
        .. new[] { 16, 32, 64 }.Select(n => new EvaluationConfig(EvaluationMethod.Rejection, N: n, M: 8, Beta: 0.5)),
        .. new[] { 1.0, 0.25 }.Select(l => new EvaluationConfig(EvaluationMethod.SoftBestOfN, N: 16, Beta: l)),
        .. from b in new[] { 2, 4 } from k in new[] { 4, 8, 16 } select new EvaluationConfig(EvaluationMethod.Beam, N: b, K: k, M: 8),
    ];

    /// <summary>Aligned outputs per prompt and point of <c>evaluate --frontier</c> unless <c>--outputs</c> says otherwise.</summary>
    public const int FrontierOutputsPerPrompt = 64;

    /// <summary>
    /// The frontier as the talk draws it (<c>evaluate --frontier</c>): every family swept along its own knob so that
    /// the curves overlap in KL. Best-of-n n = 1..64; soft best-of-n [M27] at n = 16 over lambda from 8 (near base)
    /// to 1/128 (near best-of-16); blockwise CD K in {2, 4, 8, 16} x M in {4, 8, 16} (small K too: its KL grows with
    /// the number of blocks [M19]); token-wise CD over beta from 4 down to 1/16; beam search B = 2, K in {4, 8} at
    /// M = 8; early rejection at three alpha/every settings. Ids are those of <see cref="FullSweep"/> where a point
    /// is in both, so a folder resumes under either preset.
    /// </summary>
    public static IReadOnlyList<EvaluationConfig> Frontier(int tokenwiseCandidates) =>
    [
        .. new[] { 1, 2, 4, 8, 16, 32, 64 }.Select(n => new EvaluationConfig(EvaluationMethod.BestOfN, N: n)),
        .. FrontierLambdas.Select(l => new EvaluationConfig(EvaluationMethod.SoftBestOfN, N: 16, Beta: l)),
        .. from m in new[] { 4, 8, 16 } from k in new[] { 2, 4, 8, 16 } select new EvaluationConfig(EvaluationMethod.Blockwise, K: k, M: m),
        .. FrontierBetas.Select(b => new EvaluationConfig(EvaluationMethod.Tokenwise, K: tokenwiseCandidates, Beta: b)),
        .. new[] { 4, 8 }.Select(k => new EvaluationConfig(EvaluationMethod.Beam, N: 2, K: k, M: 8)),
        new EvaluationConfig(EvaluationMethod.Rejection, N: 32, M: 8, Beta: 0.5),
        new EvaluationConfig(EvaluationMethod.Rejection, N: 32, M: 8, Beta: 0.75),
        new EvaluationConfig(EvaluationMethod.Rejection, N: 16, M: 4, Beta: 0.5),
    ];

    /// <summary>Soft best-of-n temperatures of the frontier: factors of 4 from 8 (close to base) to 1/128 (close to best-of-16).</summary>
    public static IReadOnlyList<double> FrontierLambdas { get; } = [8, 2, 0.5, 0.125, 0.03125, 0.0078125];

    /// <summary>Token-wise tilt strengths of the frontier: halving from 4 to 1/16.</summary>
    public static IReadOnlyList<double> FrontierBetas { get; } = [4, 2, 1, 0.5, 0.25, 0.125, 0.0625];

    /// <summary>A few points per method, for smoke tests (about a minute on the default model).</summary>
    public static IReadOnlyList<EvaluationConfig> QuickSweep(int tokenwiseCandidates) =>
    [
        .. new[] { 1, 4, 16 }.Select(n => new EvaluationConfig(EvaluationMethod.BestOfN, N: n)),
        .. new[] { 2, 8 }.Select(k => new EvaluationConfig(EvaluationMethod.Blockwise, K: k, M: 8)),
        .. new[] { 2.0, 0.5 }.Select(b => new EvaluationConfig(EvaluationMethod.Tokenwise, K: tokenwiseCandidates, Beta: b)),
        new EvaluationConfig(EvaluationMethod.Rejection, N: 16, M: 8, Beta: 0.5),
        new EvaluationConfig(EvaluationMethod.Beam, N: 2, K: 8, M: 8),
    ];
}

/// <summary>The measured result of one sweep configuration (a row of points.csv / points.json).</summary>
public sealed record EvaluatedPoint
{
    public required string Id { get; init; }
    public required string Series { get; init; }
    public required EvaluationMethod Method { get; init; }
    public int N { get; init; }
    public int K { get; init; }
    public int M { get; init; }
    public double Beta { get; init; }
    public required int Prompts { get; init; }
    public required int Outputs { get; init; }

    /// <summary>Win-rate against base samples of the same prompt [M10], ties 1/2, averaged over prompts.</summary>
    public required double WinRate { get; init; }
    public required double WinRateLower { get; init; }
    public required double WinRateUpper { get; init; }

    /// <summary>Mean KL estimate of the outputs (the strategy's own estimator), nats.</summary>
    public required double Kl { get; init; }
    public required double KlStandardError { get; init; }
    /// <summary>How <see cref="Kl"/> was obtained, spelled as every front-end spells it (<c>best_of_n_estimate</c>, ...).</summary>
    public required string KlMethod { get; init; }

    /// <summary>A KL method as the HTTP API, <c>--json</c>, batch and export spell it: snake_case.</summary>
    public static string MethodName(Tilt.Engine.Requests.KlMethod method) => Respell(method.ToString());

    /// <summary>snake_case of a PascalCase name (what earlier points files hold); a name already in snake_case is kept.</summary>
    internal static string Respell(string name) =>
        name.Any(char.IsUpper) ? System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(name) : name;

    /// <summary>Exact KL(pi || p) where the model is tabular and the policy can be enumerated; else null.</summary>
    public double? KlExact { get; init; }

    /// <summary>Exact win-rate against p where it can be computed (tabular); else null.</summary>
    public double? WinRateExact { get; init; }

    public required double MeanReward { get; init; }
    public required double BaseMeanReward { get; init; }

    /// <summary>Tokens the model decoded per token of output: the compute cost relative to plain sampling.</summary>
    public required double TokensEvaluatedPerOutputToken { get; init; }

    public required double LatencyMsPerOutput { get; init; }
    public required double FirstTextMs { get; init; }

    /// <summary>
    /// Each output's time to first streamed text (ms from the request's start to the engine's first accepted-text
    /// event), [prompt][output]: what a median with an interval needs. points.json only; null in folders written before it existed.
    /// </summary>
    public RewardsByPrompt? FirstTextMsByPrompt { get; init; }
    public required double Seconds { get; init; }

    /// <summary>
    /// The aligned outputs' rewards, [prompt][output]: what a win-rate of one point against another needs
    /// (<see cref="PairwiseWinRates"/>). In points.json only (not a CSV column); null in folders written before it existed.
    /// </summary>
    public RewardsByPrompt? PromptRewards { get; init; }
}

/// <summary>
/// Numbers per prompt, [prompt][output] (rewards; also times to first text), with value equality (so points compare by their numbers); written in JSON as
/// an array of arrays.
/// </summary>
[System.Text.Json.Serialization.JsonConverter(typeof(RewardsByPromptConverter))]
public sealed class RewardsByPrompt : IEquatable<RewardsByPrompt>
{
    private readonly double[][] _rewards;

    public RewardsByPrompt(IEnumerable<IEnumerable<double>> rewards)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        _rewards = rewards.Select(r => r.ToArray()).ToArray();
    }

    public int Count => _rewards.Length;

    /// <summary>The rewards of the outputs of prompt <paramref name="prompt"/>.</summary>
    public IReadOnlyList<double> this[int prompt] => _rewards[prompt];

    /// <summary>Every prompt's rewards, in prompt order.</summary>
    public IEnumerable<IReadOnlyList<double>> Prompts => _rewards;

    public bool Equals(RewardsByPrompt? other) =>
        other is not null && other._rewards.Length == _rewards.Length && _rewards.Zip(other._rewards).All(x => x.First.AsSpan().SequenceEqual(x.Second));

    public override bool Equals(object? obj) => Equals(obj as RewardsByPrompt);

    public override int GetHashCode() => HashCode.Combine(_rewards.Length, _rewards.Sum(r => r.Length));

    public override string ToString() => $"{_rewards.Length} prompts x {(_rewards.Length > 0 ? _rewards[0].Length : 0)} outputs";
}

internal sealed class RewardsByPromptConverter : System.Text.Json.Serialization.JsonConverter<RewardsByPrompt>
{
    public override RewardsByPrompt? Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options)
    {
        var rows = System.Text.Json.JsonSerializer.Deserialize<double[][]>(ref reader, options);
        return rows is null ? null : new RewardsByPrompt(rows);
    }

    public override void Write(System.Text.Json.Utf8JsonWriter writer, RewardsByPrompt value, System.Text.Json.JsonSerializerOptions options) =>
        System.Text.Json.JsonSerializer.Serialize(writer, value.Prompts.Select(p => p.ToArray()).ToArray(), options);
}

/// <summary>An exactly computed curve (tabular models): best-of-n for n = 1..64, or the optimal frontier pi*_beta.</summary>
public sealed record ExactCurve(string Name, IReadOnlyList<ExactCurvePoint> Points);

/// <summary>A point of an exact curve.</summary>
public sealed record ExactCurvePoint(double Parameter, double Kl, double WinRate, double ExpectedReward);
