using ScottPlot;
using Tilt.Engine.Evaluation;

namespace Tilt.Cli.Reports;

/// <summary>The pictures of an evaluation: win-rate vs KL (with the KL budget bands [M26]) and reward vs compute.</summary>
internal static class EvaluationPlots
{
    public const int Width = 1000, Height = 650;

    /// <summary>
    /// Writes winrate_vs_kl.png/.svg and reward_vs_compute.png/.svg into the folder; returns the file names. With
    /// <paramref name="frontier"/>, points are drawn by <see cref="FrontierAnalysis.Family"/> (one curve per family)
    /// and firsttext_vs_kl.png/.svg is added.
    /// </summary>
    public static IReadOnlyList<string> Write(string directory, IReadOnlyList<EvaluatedPoint> points, IReadOnlyList<ExactCurve> curves, string title, bool frontier = false)
    {
        Func<EvaluatedPoint, string> group = frontier ? FrontierAnalysis.Family : p => p.Series;
        var files = new List<string>();
        var winRate = WinRateVsKl(points, curves, title, group);
        files.AddRange(Save(winRate, directory, "winrate_vs_kl"));
        var reward = RewardVsCompute(points, title, group);
        files.AddRange(Save(reward, directory, "reward_vs_compute"));
        if (frontier) files.AddRange(Save(FirstTextVsKl(points, title, group), directory, "firsttext_vs_kl"));
        return files;
    }

    /// <summary>Median time to first streamed text (with its 95% interval) against KL, log scale: what streaming buys.</summary>
    private static Plot FirstTextVsKl(IReadOnlyList<EvaluatedPoint> points, string title, Func<EvaluatedPoint, string> group)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int colorIndex = 0;
        foreach (var series in points.GroupBy(group))
        {
            var ordered = series.OrderBy(p => p.Kl).Select(p => (Point: p, Median: p.FirstTextMsByPrompt is { Count: > 0 } t
                ? FrontierAnalysis.Median(t.Prompts.SelectMany(x => x).ToArray())
                : new MedianEstimate(p.FirstTextMs, p.FirstTextMs, p.FirstTextMs, p.Outputs))).ToArray();
            var xs = ordered.Select(o => o.Point.Kl).ToArray();
            var ys = ordered.Select(o => Math.Log10(Math.Max(1e-3, o.Median.Median))).ToArray();
            var color = palette.GetColor(colorIndex++);
            var scatter = plot.Add.Scatter(xs, ys);
            scatter.LegendText = series.Key;
            scatter.Color = color;
            scatter.MarkerSize = 8;
            var errors = new ScottPlot.Plottables.ErrorBar(xs, ys, null, null,
                ordered.Select((o, i) => Math.Log10(Math.Max(1e-3, o.Median.Upper)) - ys[i]).ToArray(),
                ordered.Select((o, i) => ys[i] - Math.Log10(Math.Max(1e-3, o.Median.Lower))).ToArray())
            {
                Color = color,
            };
            plot.Add.Plottable(errors);
        }
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = y => Math.Pow(10, y).ToString("G3", CultureInfo.InvariantCulture) };
        plot.Title(title);
        plot.XLabel("KL(pi || p) [nats], estimated");
        plot.YLabel("time to first streamed text [ms], median and 95% CI (log scale)");
        plot.ShowLegend(Alignment.LowerRight);
        return plot;
    }

    private static IEnumerable<string> Save(Plot plot, string directory, string name)
    {
        AtomicFile.WriteAllBytes(Path.Combine(directory, name + ".png"), plot.GetImageBytes(Width, Height, ImageFormat.Png));
        AtomicFile.WriteAllText(Path.Combine(directory, name + ".svg"), plot.GetSvgXml(Width, Height));
        return [name + ".png", name + ".svg"];
    }

    private static Plot WinRateVsKl(IReadOnlyList<EvaluatedPoint> points, IReadOnlyList<ExactCurve> curves, string title, Func<EvaluatedPoint, string> group)
    {
        var plot = new Plot();
        // Where the model is tabular the exact KL is known: plot it, since the estimators are biased (KLhat >= KL).
        static double X(EvaluatedPoint p) => p.KlExact ?? p.Kl;
        double maxKl = Math.Max(1.0, points.Select(p => X(p) + p.KlStandardError).Append(0).Max() * 1.1);
        double minWin = Math.Min(0.4, points.Select(p => p.WinRateLower).Append(1).Min() - 0.05);

        // KL budget bands [M26]: shaded where they fall inside the plotted range.
        (double From, double To, string Label, Color Color)[] bands =
        [
            (KlBudget.FineBelow, KlBudget.CautionUpTo, "KL 8-15: caution", Colors.Orange.WithAlpha(0.12)),
            (KlBudget.CautionUpTo, KlBudget.UsefulUpTo, "KL 15-100: inspect for reward hacking", Colors.Red.WithAlpha(0.10)),
            (KlBudget.UsefulUpTo, 1e9, "KL > 100: unlikely useful", Colors.Gray.WithAlpha(0.15)),
        ];
        foreach (var (from, to, label, color) in bands)
        {
            if (from >= maxKl) continue;
            var span = plot.Add.HorizontalSpan(from, Math.Min(to, maxKl));
            span.FillStyle.Color = color;
            span.LegendText = label;
        }

        var palette = new ScottPlot.Palettes.Category10();
        int colorIndex = 0;
        foreach (var curve in curves)
        {
            var xs = curve.Points.Select(p => p.Kl).ToArray();
            var ys = curve.Points.Select(p => p.WinRate).ToArray();
            var line = plot.Add.ScatterLine(xs, ys);
            line.LegendText = curve.Name;
            line.LineWidth = 2;
            line.LinePattern = LinePattern.Dashed;
            line.Color = palette.GetColor(colorIndex++);
        }
        foreach (var series in points.GroupBy(group))
        {
            var ordered = series.OrderBy(X).ToArray();
            var xs = ordered.Select(X).ToArray();
            var ys = ordered.Select(p => p.WinRate).ToArray();
            var color = palette.GetColor(colorIndex++);
            var scatter = plot.Add.Scatter(xs, ys);
            scatter.LegendText = series.Key;
            scatter.Color = color;
            scatter.MarkerSize = 8;
            var klError = ordered.Select(p => p.KlExact is null ? p.KlStandardError : 0).ToArray();
            var errors = new ScottPlot.Plottables.ErrorBar(xs, ys, klError, klError,
                ordered.Select(p => p.WinRateUpper - p.WinRate).ToArray(), ordered.Select(p => p.WinRate - p.WinRateLower).ToArray())
            {
                Color = color,
            };
            plot.Add.Plottable(errors);
        }
        plot.Title(title);
        plot.XLabel(points.Any(p => p.KlExact is not null) ? "KL(pi || p) [nats], exact where the model is tabular" : "KL(pi || p) [nats], estimated");
        plot.YLabel("win-rate vs base samples (ties 1/2), 95% CI");
        plot.Axes.SetLimits(0, maxKl, Math.Max(0, minWin), 1);
        plot.ShowLegend(Alignment.LowerRight);
        return plot;
    }

    private static Plot RewardVsCompute(IReadOnlyList<EvaluatedPoint> points, string title, Func<EvaluatedPoint, string> group)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int colorIndex = 0;
        foreach (var series in points.GroupBy(group))
        {
            var ordered = series.OrderBy(p => p.TokensEvaluatedPerOutputToken).ToArray();
            var scatter = plot.Add.Scatter(ordered.Select(p => p.TokensEvaluatedPerOutputToken).ToArray(), ordered.Select(p => p.MeanReward).ToArray());
            scatter.LegendText = series.Key;
            scatter.Color = palette.GetColor(colorIndex++);
            scatter.MarkerSize = 8;
        }
        if (points.Count > 0)
        {
            var baseline = plot.Add.HorizontalLine(points[0].BaseMeanReward);
            baseline.LegendText = "base model mean reward";
            baseline.LinePattern = LinePattern.Dotted;
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic();
        plot.Title(title);
        plot.XLabel("tokens evaluated per output token (compute)");
        plot.YLabel("mean reward");
        plot.ShowLegend(Alignment.LowerRight);
        return plot;
    }
}
