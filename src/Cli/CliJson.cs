using System.Text.Json;
using Tilt.Engine.Requests;

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
