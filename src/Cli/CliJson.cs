namespace Tilt.Cli;

/// <summary>JSON settings of every machine-readable output: camelCase, compact, non-ASCII kept readable.</summary>
internal static class CliJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// An enum value as the HTTP API spells it (snake_case: <c>best_of_n_estimate</c>, <c>fine</c>), so a KL method or
    /// band reads the same in <c>--json</c>, batch, export and server output.
    /// </summary>
    public static string Snake<T>(T value) where T : struct, Enum => JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());

    /// <summary>
    /// One aligned output as <c>align --json</c> and batch lines print it (one shape for both; a batch line adds its line
    /// number, prompt and queueing time, which a single command has no use for and leaves out).
    /// </summary>
    public static SampleJson Sample(Tilt.Engine.Requests.AlignedSample s, string strategy, string rewardSpec, string? value,
        Tilt.Engine.Models.ILanguageModel model, int? line = null, string? prompt = null) => new()
    {
        Line = line,
        Index = s.Index,
        Strategy = strategy,
        Prompt = prompt,
        Text = s.Text,
        Tokens = s.Tokens,
        Reward = s.Reward,
        RewardSpec = rewardSpec,
        Value = value,
        Logprob = s.LogProb,
        Kl = new { s.Kl.Value, Method = Snake(s.Kl.Method), Band = Snake(s.Kl.Band) },
        KlBound = s.KlBound is { } b ? new { b.Value, Method = Snake(b.Method) } : null,
        WinRateVsCandidates = s.WinRateVsCandidates,
        SurvivorsPerDecision = s.SurvivorsPerDecision,
        TokensSavedEstimate = s.TokensSavedEstimate,
        ForcedTokens = s.ForcedTokens,
        Finish = s.Finish.ToString().ToLowerInvariant(),
        Partial = s.IsPartial,
        TokensEvaluated = s.TokensEvaluated,
        PromptTokens = s.PromptTokens,
        CachedPromptTokens = s.CachedPromptTokens,
        Timings = new
        {
            QueuedMs = line is null ? (double?)null : s.Timings.Queued.TotalMilliseconds,
            PrefillMs = s.Timings.Prefill.TotalMilliseconds,
            FirstTextMs = s.Timings.FirstAccepted.TotalMilliseconds,
            TotalMs = s.Timings.Total.TotalMilliseconds,
            s.Timings.DecodeCalls,
            PerStepMs = s.Timings.PerStep.TotalMilliseconds,
            TokensPerSecond = s.Tokens.Count / Math.Max(1e-9, (s.Timings.Total - s.Timings.Prefill).TotalSeconds),
        },
        Candidates = s.Candidates.Count > 0 ? s.Candidates : null,
        TokenLogprobs = TokenLogprobs(model, s.TokenLogProbs),
    };

    /// <summary>
    /// Per-token log-probabilities as JSON: token id, its text, log p at T = 1 (null for a forced-prefix token), the
    /// sampler's log-probability where it differs, and the top alternatives; null when none were asked for.
    /// </summary>
    public static object? TokenLogprobs(Tilt.Engine.Models.ILanguageModel model, IReadOnlyList<Tilt.Engine.Requests.TokenLogProb>? tokens) =>
        tokens?.Select(t => new
        {
            t.Token,
            Text = model.Detokenize([t.Token]),
            Logprob = double.IsFinite(t.LogProb) ? t.LogProb : (double?)null,
            SamplerLogprob = double.IsFinite(t.SamplerLogProb) ? t.SamplerLogProb : (double?)null,
            Top = t.Top.Select(a => new { a.Token, Text = model.Detokenize([a.Token]), Logprob = a.LogProb }).ToArray(),
        }).ToArray();
}

/// <summary>The JSON of one aligned output (<see cref="CliJson.Sample"/>).</summary>
internal sealed record SampleJson
{
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public int? Line { get; init; }
    public int Index { get; init; }
    public required string Strategy { get; init; }
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Prompt { get; init; }
    public required string Text { get; init; }
    public required object Tokens { get; init; }
    public double Reward { get; init; }
    public required string RewardSpec { get; init; }
    public string? Value { get; init; }
    public double Logprob { get; init; }
    public required object Kl { get; init; }
    public object? KlBound { get; init; }
    public object? WinRateVsCandidates { get; init; }
    public object? SurvivorsPerDecision { get; init; }
    public object? TokensSavedEstimate { get; init; }
    public object? ForcedTokens { get; init; }
    public required string Finish { get; init; }
    public bool Partial { get; init; }
    public long TokensEvaluated { get; init; }
    public object? PromptTokens { get; init; }
    public object? CachedPromptTokens { get; init; }
    public required object Timings { get; init; }
    public object? Candidates { get; init; }
    public object? TokenLogprobs { get; init; }
}
