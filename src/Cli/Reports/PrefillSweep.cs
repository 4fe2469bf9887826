using ScottPlot;
using Tilt.Engine.Evaluation;
using Tilt.Engine.Text;

namespace Tilt.Cli.Reports;

/// <summary>
/// <c>tilt evaluate --prefills FILE</c>: how deep is the alignment? For each forced opening of the response (one per line
/// of FILE; the empty opening first, as the reference) every selected strategy and the base model are evaluated with the
/// response forced to start with it: mean reward and win-rate against base samples that were given the same opening.
/// A strategy whose reward recovers as the opening grows is deep; one whose reward follows the opening is shallow.
/// Writes prefill-points.csv, prefills.md and reward_vs_prefix.png/.svg.
/// </summary>
internal static class PrefillSweep
{
    private sealed record Row(int Prefix, string Opening, int OpeningTokens, string Series, string Id, double MeanReward, double BaseMeanReward,
        double WinRate, double WinRateLower, double WinRateUpper, double Kl);

    public static async Task<int> RunAsync(CliConsole console, ILanguageModel model, IStepKernels kernels, EvaluationSettings settings,
        IReadOnlyList<EvaluationConfig> sweep, string prefillsPath, string folder, CancellationToken cancellationToken)
    {
        var openings = new List<string> { "" };
        openings.AddRange(TextFile.ReadLines(prefillsPath, "prefills file").Select(l => l.Trim()).Where(l => l.Length > 0));
        if (openings.Count == 1) throw new TiltException($"{Path.GetFullPath(prefillsPath)}: no forced prefix in the file (one per line)");
        var rows = new List<Row>();
        for (int i = 0; i < openings.Count; i++)
        {
            string opening = openings[i];
            var evaluator = new Evaluator(model, kernels, settings with { ForcedPrefix = opening.Length == 0 ? null : opening });
            int openingTokens = opening.Length == 0 ? 0 : model.Tokenize(opening, addBos: false).Length;
            console.Error.WriteLine($"prefix {i}/{openings.Count - 1} ({openingTokens} tokens): '{opening}'");
            foreach (var config in sweep)
            {
                var p = await evaluator.EvaluateAsync(config, cancellationToken);
                rows.Add(new Row(i, opening, openingTokens, p.Series, p.Id, p.MeanReward, p.BaseMeanReward, p.WinRate, p.WinRateLower, p.WinRateUpper, p.Kl));
                console.Error.WriteLine($"    {p.Id}: reward {p.MeanReward:F2} (base {p.BaseMeanReward:F2}), win-rate {p.WinRate:F3}");
            }
            // Written after every opening, so an interrupted sweep keeps what it measured.
            AtomicFile.WriteAllText(Path.Combine(folder, "prefill-points.csv"), Csv(rows));
        }
        var pictures = Plot(folder, rows, $"{Path.GetFileName(model.Info.Path)} / {settings.Reward.Description}");
        AtomicFile.WriteAllText(Path.Combine(folder, "prefills.md"), Report(model, settings, rows, pictures));
        console.Out.WriteLine(Path.Combine(folder, "prefills.md"));
        return 0;
    }

    private static string Csv(List<Row> rows)
    {
        var sb = new StringBuilder("prefix,opening,openingTokens,series,id,meanReward,baseMeanReward,winRate,winRateLower,winRateUpper,kl\n");
        foreach (var r in rows)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Prefix},\"{r.Opening.Replace("\"", "\"\"")}\",{r.OpeningTokens},\"{r.Series}\",{r.Id},{r.MeanReward:R},{r.BaseMeanReward:R},{r.WinRate:R},{r.WinRateLower:R},{r.WinRateUpper:R},{r.Kl:R}"));
        return sb.ToString();
    }

    private static IReadOnlyList<string> Plot(string folder, List<Row> rows, string title)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int color = 0;
        foreach (var series in rows.GroupBy(r => r.Id))
        {
            var points = series.OrderBy(r => r.OpeningTokens).ToArray();
            var line = plot.Add.ScatterLine(points.Select(r => (double)r.OpeningTokens).ToArray(), points.Select(r => r.MeanReward).ToArray());
            line.Color = palette.GetColor(color++);
            line.LegendText = series.Key;
            line.MarkerSize = 6;
        }
        var reference = rows.GroupBy(r => r.Prefix).Select(g => g.First()).OrderBy(r => r.OpeningTokens).ToArray();
        var baseLine = plot.Add.ScatterLine(reference.Select(r => (double)r.OpeningTokens).ToArray(), reference.Select(r => r.BaseMeanReward).ToArray());
        baseLine.Color = Colors.Black;
        baseLine.LinePattern = LinePattern.Dashed;
        baseLine.LegendText = "base model (same opening)";
        plot.Title($"reward vs forced prefix length: {title}");
        plot.XLabel("forced prefix (tokens)");
        plot.YLabel("mean reward of the whole response");
        plot.ShowLegend(Alignment.UpperRight);
        AtomicFile.WriteAllBytes(Path.Combine(folder, "reward_vs_prefix.png"), plot.GetImageBytes(EvaluationPlots.Width, EvaluationPlots.Height, ImageFormat.Png));
        AtomicFile.WriteAllText(Path.Combine(folder, "reward_vs_prefix.svg"), plot.GetSvgXml(EvaluationPlots.Width, EvaluationPlots.Height));
        return ["reward_vs_prefix.png", "reward_vs_prefix.svg"];
    }

    private static string Report(ILanguageModel model, EvaluationSettings settings, List<Row> rows, IReadOnlyList<string> pictures)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Forced prefixes: how deep is the alignment?");
        sb.AppendLine();
        sb.AppendLine($"- model: `{Path.GetFileName(model.Info.Path)}`, fingerprint `{model.Info.Fingerprint}`; reward `{settings.Reward.Description}`");
        sb.AppendLine($"- {settings.Prompts.Count} prompts x {settings.OutputsPerPrompt} outputs per point, {settings.BaseSamplesPerPrompt} base samples per prompt " +
                      $"(given the same opening), {settings.MaxTokens} generated tokens after the opening, seed {settings.Seed}");
        sb.AppendLine("- the reward reads the whole response (opening included); KL and log p exclude the forced opening");
        sb.AppendLine();
        sb.AppendLine($"![{pictures[0]}]({pictures[0]})");
        sb.AppendLine();
        sb.AppendLine("| opening | tokens | point | mean reward | base (same opening) | win-rate [95% CI] | KL |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var r in rows)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {(r.Opening.Length == 0 ? "(none)" : r.Opening.Replace("|", "\\|"))} | {r.OpeningTokens} | {r.Id} | {r.MeanReward:F2} | {r.BaseMeanReward:F2} | {r.WinRate:F3} [{r.WinRateLower:F3}, {r.WinRateUpper:F3}] | {r.Kl:F2} |"));
        return sb.ToString();
    }
}
