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
