using System.Text.Json;
using Tilt.Engine.Evaluation;

namespace Tilt.Cli.Reports;

/// <summary>
/// The frontier part of an <c>evaluate --frontier</c> report: per point the win-rate against best-of-n at the nearest
/// KL, the KL bound, reward, compute and time to first text (frontier.md section, frontier.json), the outputs the
/// measured intervals call for, and on a tabular model the checks against the exact curves.
/// </summary>
internal static class FrontierReport
{
    public const string JsonFile = "frontier.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>What frontier.json holds.</summary>
    internal sealed record FrontierFile(IReadOnlyList<FrontierRow> Rows, IReadOnlyList<ExactCheck> Checks, double? MedianOutputsToSeparate);

    /// <summary>Appends the frontier sections to <paramref name="sb"/> and writes frontier.json into <paramref name="folder"/>.</summary>
    public static void Append(StringBuilder sb, string folder, IReadOnlyList<EvaluatedPoint> points, int maxTokens, IReadOnlyList<ExactCheck> checks, bool tabular)
    {
        var inv = CultureInfo.InvariantCulture;
        var ordered = points.OrderBy(p => p.Method).ThenBy(p => p.Kl).ToArray();
        var rows = FrontierAnalysis.Rows(ordered, maxTokens);
        var byId = ordered.ToDictionary(p => p.Id);
        sb.AppendLine();
        sb.AppendLine("## The frontier");
        sb.AppendLine();
        sb.AppendLine("Per point: win-rate against base samples [M10] and against the outputs of the best-of-n point whose KL estimate is closest (same prompts, ties 1/2, 95% interval from DeLong's variance per prompt; > 0.5 means the point beats best-of-n at about the same KL); the KL estimate and, where the strategy has one, its bound (best-of-n and soft best-of-n: log n - (n-1)/n [M7], [M27]; blockwise CD: that of K per block times the blocks [M19]); mean reward +- its standard error; tokens the model evaluated per output token; the median time to first streamed text (from the request's start to the engine's first accepted-text event, per output) with a distribution-free 95% interval; and the outputs per prompt at which the interval against best-of-n would exclude 1/2 (half-width scaling as 1/sqrt(outputs)). Beyond the largest best-of-n's KL the pairing is with that point, at a smaller KL: read those rows as what more KL bought over the largest best-of-n, not as a comparison at equal KL.");
        sb.AppendLine();
        sb.AppendLine("| point | family | KL estimate | KL bound | win-rate vs base | vs best-of-n at nearest KL | mean reward | tokens evaluated / output token | first text ms, median [95%] | outputs/prompt to separate |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var row in rows)
        {
            var p = byId[row.Point];
            var reward = FrontierAnalysis.Reward(p);
            string against = row.AgainstBestOfN is { } w ? string.Create(inv, $"{w.WinRate:F3} [{w.Lower:F3}, {w.Upper:F3}] vs {row.NearestBestOfN} (KL {byId[row.NearestBestOfN!].Kl:F2})") : "-";
            string first = row.FirstText is { } f ? string.Create(inv, $"{f.Median:F1} [{f.Lower:F1}, {f.Upper:F1}]") : string.Create(inv, $"{p.FirstTextMs:F1} (mean)");
            string rewardText = reward is { } r ? string.Create(inv, $"{r.Mean:F3} +- {r.StandardError:F3}") : string.Create(inv, $"{p.MeanReward:F3}");
            sb.AppendLine(string.Create(inv, $"| {p.Id} | {row.Family} | {p.Kl:F3} +- {p.KlStandardError:F3} | {Fmt(row.KlBound)} | {p.WinRate:F3} [{p.WinRateLower:F3}, {p.WinRateUpper:F3}] | {against} | {rewardText} | {p.TokensEvaluatedPerOutputToken:F1} | {first} | {Outputs(row.OutputsToSeparate)} |"));
        }

        var paired = rows.Where(r => r.OutputsToSeparate is not null).ToArray();
        double? median = paired.Length > 0 ? FrontierAnalysis.Median(paired.Select(r => r.OutputsToSeparate!.Value).ToArray()).Median : null;
        if (paired.Length > 0)
        {
            int outputsPerPrompt = ordered[0].Outputs / Math.Max(1, ordered[0].Prompts);
            int separated = paired.Count(r => r.AgainstBestOfN!.Lower > 0.5 || r.AgainstBestOfN.Upper < 0.5);
            sb.AppendLine();
            sb.AppendLine(string.Create(inv, $"How many outputs separate the families: at {outputsPerPrompt} outputs per prompt, {separated} of the {paired.Length} points paired with best-of-n have a 95% interval against it that excludes 1/2. From the measured intervals, the median point needs {median:F0} outputs per prompt for its interval to exclude 1/2 (per family: {string.Join("; ", paired.GroupBy(r => r.Family).Select(g => string.Create(inv, $"{g.Key} {FrontierAnalysis.Median(g.Select(r => r.OutputsToSeparate!.Value).ToArray()).Median:F0}")))}). Points whose win-rate against best-of-n is close to 1/2 need many more: there the families lie on one curve."));
        }

        if (tabular)
        {
            sb.AppendLine();
            sb.AppendLine("## Against the exact curves (tabular model)");
            sb.AppendLine();
            if (checks.Count == 0)
            {
                sb.AppendLine("No checks: they need a single prompt, and token-wise CD with `--value exact-soft --top-k 0` for the frontier check.");
            }
            else
            {
                sb.AppendLine(string.Create(inv, $"Best-of-n points against the exact best-of-n at the same n (win-rate and reward; the KL column shows the estimate KLhat [M9] beside the exact KL [M6], which it overestimates by design); token-wise CD with the exact soft value against the exact optimal policy pi*_beta at the same beta (KL, reward and win-rate). z = (measured - exact) / standard error; a point lies where theory puts it when every |z| <= {FrontierAnalysis.CheckZ:F0}; a figure with no spread in the sample (every output with the same reward: no standard error) shows no z and is not judged."));
                sb.AppendLine();
                sb.AppendLine("| point | exact curve | n or beta | KL (estimate / exact) | z KL | reward (measured / exact) | z reward | win-rate (measured / exact) | z win-rate | where theory puts it |");
                sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
                foreach (var c in checks)
                {
                    sb.AppendLine(string.Create(inv, $"| {c.Point} | {c.Curve} | {c.Parameter:R} | {c.Kl:F3} / {c.KlExact:F3} | {Z(c.KlZ)} | {c.Reward:F3} / {c.RewardExact:F3} | {Z(c.RewardZ)} | {c.WinRate:F3} / {c.WinRateExact:F3} | {Z(c.WinRateZ)} | {(c.WhereTheoryPutsIt ? "yes" : "**no**")} |"));
                }
                sb.AppendLine();
                sb.AppendLine(string.Create(inv, $"{checks.Count(c => c.WhereTheoryPutsIt)} of {checks.Count} points lie where theory puts them."));
            }
        }

        AtomicFile.WriteAllText(Path.Combine(folder, JsonFile), JsonSerializer.Serialize(new FrontierFile(rows, checks, median), Json));

        static string Fmt(double? x) => x is { } v ? v.ToString("F3", CultureInfo.InvariantCulture) : "-";
        static string Z(double? z) => z is { } v ? v.ToString("+0.00;-0.00", CultureInfo.InvariantCulture) : "-";
        static string Outputs(double? x) => x switch
        {
            null => "-",
            > 1e6 => "> 10^6",
            { } v => Math.Ceiling(v).ToString("F0", CultureInfo.InvariantCulture),
        };
    }
}
