using Tilt.Engine.Statistics;

namespace Tilt.Engine.Evaluation;

/// <summary>What <c>evaluate --frontier</c> adds to each point: best-of-n at the nearest KL, its KL bound and time to first text.</summary>
/// <param name="Point">The point's id.</param>
/// <param name="Family">The curve it is drawn on (<see cref="FrontierAnalysis.Family"/>).</param>
/// <param name="NearestBestOfN">Id of the best-of-n point whose KL is closest to this point's; null for best-of-n points and where there is none.</param>
/// <param name="AgainstBestOfN">This point's outputs against that best-of-n point's outputs; null where there is no pairing.</param>
/// <param name="KlBound">An upper bound on the point's KL where the strategy has one ([M7], [M19], [M27]); else null.</param>
/// <param name="FirstText">Median time to first streamed text over the point's outputs, ms, with its 95% interval; null in older folders.</param>
/// <param name="OutputsToSeparate">
/// Outputs per prompt at which the 95% interval of <see cref="AgainstBestOfN"/> would be narrower than its distance from
/// 1/2 (the interval's half-width scales as 1/sqrt(outputs)); null where there is no pairing or the win-rate is exactly 1/2.
/// </param>
public sealed record FrontierRow(
    string Point, string Family, string? NearestBestOfN, PairwiseWinRate? AgainstBestOfN, double? KlBound, MedianEstimate? FirstText, double? OutputsToSeparate);

/// <summary>A median with a distribution-free 95% interval (order statistics of the binomial(n, 1/2) ranks).</summary>
public readonly record struct MedianEstimate(double Median, double Lower, double Upper, int Count);

/// <summary>The figures of the frontier report (docs/frontier.md), computed from evaluated points alone.</summary>
public static class FrontierAnalysis
{
    /// <summary>
    /// How many standard errors from its exact value a measured figure may lie and still count as where theory puts it:
    /// 3 (a two-sided 0.27% false alarm per figure if the estimate is normal and unbiased).
    /// </summary>
    public const double CheckZ = 3.0;

    /// <summary>
    /// The curve a point belongs to in the frontier's pictures: one per family and knob-free setting (soft best-of-n at
    /// all its lambdas is one curve, unlike <see cref="EvaluatedPoint.Series"/>).
    /// </summary>
    public static string Family(EvaluatedPoint point)
    {
        ArgumentNullException.ThrowIfNull(point);
        return point.Method switch
        {
            EvaluationMethod.BestOfN => "best-of-n",
            EvaluationMethod.SoftBestOfN => $"soft best-of-n (n={point.N})",
            EvaluationMethod.Blockwise => $"blockwise CD (M={point.M})",
            EvaluationMethod.Tokenwise => "token-wise CD",
            EvaluationMethod.Beam => $"beam search (B={point.N}, M={point.M})",
            _ => "early rejection",
        };
    }

    /// <summary>
    /// The best-of-n point whose KL estimate is closest to <paramref name="point"/>'s (ties: the smaller n), among
    /// points with per-prompt rewards over the same prompts; null for a best-of-n point itself and where there is none.
    /// </summary>
    public static EvaluatedPoint? NearestBestOfN(EvaluatedPoint point, IReadOnlyList<EvaluatedPoint> points)
    {
        ArgumentNullException.ThrowIfNull(point);
        ArgumentNullException.ThrowIfNull(points);
        if (point.Method == EvaluationMethod.BestOfN || point.PromptRewards is not { Count: > 0 } rewards) return null;
        return points
            .Where(b => b.Method == EvaluationMethod.BestOfN && b.PromptRewards is { } r && r.Count == rewards.Count && double.IsFinite(b.Kl))
            .OrderBy(b => Math.Abs(b.Kl - point.Kl)).ThenBy(b => b.N)
            .FirstOrDefault();
    }

    /// <summary>
    /// An upper bound on the KL of a configuration run on outputs of <paramref name="maxTokens"/> tokens: best-of-n and
    /// soft best-of-n log n - (n-1)/n [M7], [M27]; blockwise CD that per block times the number of blocks [M19]; null for
    /// token-wise CD (its estimate is the exact summed drift [M15]), beam search [M29] and early rejection, which have none here.
    /// </summary>
    public static double? KlBound(EvaluationMethod method, int n, int k, int m, int maxTokens) => method switch
    {
        EvaluationMethod.BestOfN or EvaluationMethod.SoftBestOfN when n >= 1 => BestOfNBound(n),
        EvaluationMethod.Blockwise when k >= 1 && m >= 1 => (maxTokens + m - 1) / m * BestOfNBound(k),
        _ => null,
    };

    private static double BestOfNBound(int n) => Math.Log(n) - (n - 1.0) / n;

    /// <summary>
    /// The median of <paramref name="values"/> with the distribution-free 95% interval [x_(j), x_(k)], j and k the
    /// ranks n/2 -+ 1.96 sqrt(n)/2 (normal approximation to binomial(n, 1/2)), clipped to the sample.
    /// </summary>
    public static MedianEstimate Median(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("the median of no values", nameof(values));
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        double half = WinRate.Z95 * Math.Sqrt(n) / 2;
        int lower = Math.Clamp((int)Math.Floor(n / 2.0 - half), 1, n), upper = Math.Clamp((int)Math.Ceiling(n / 2.0 + half) + 1, 1, n);
        return new MedianEstimate(median, sorted[lower - 1], sorted[upper - 1], n);
    }

    /// <summary>
    /// Outputs per prompt at which the 95% interval of <paramref name="pair"/> (measured with
    /// <paramref name="outputsPerPrompt"/>) would no longer reach 1/2: outputs x (half-width / |w - 1/2|)^2. Null when
    /// w = 1/2 exactly (no number of outputs separates them).
    /// </summary>
    public static double? OutputsToSeparate(PairwiseWinRate pair, int outputsPerPrompt)
    {
        ArgumentNullException.ThrowIfNull(pair);
        double gap = Math.Abs(pair.WinRate - 0.5), half = (pair.Upper - pair.Lower) / 2;
        if (gap == 0) return null;
        return outputsPerPrompt * Math.Pow(half / gap, 2);
    }

    /// <summary>Every point's frontier row, in the order given.</summary>
    public static IReadOnlyList<FrontierRow> Rows(IReadOnlyList<EvaluatedPoint> points, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(points);
        return points.Select(p =>
        {
            var nearest = NearestBestOfN(p, points);
            var pair = nearest is null ? null : PairwiseWinRates.Of(p, nearest);
            int outputsPerPrompt = p.Prompts > 0 ? p.Outputs / p.Prompts : p.Outputs;
            var firstText = p.FirstTextMsByPrompt is { Count: > 0 } t ? Median(t.Prompts.SelectMany(x => x).ToArray()) : (MedianEstimate?)null;
            return new FrontierRow(p.Id, Family(p), nearest?.Id, pair, KlBound(p.Method, p.N, p.K, p.M, maxTokens), firstText,
                pair is null ? null : OutputsToSeparate(pair, outputsPerPrompt));
        }).ToArray();
    }

    /// <summary>The mean of a point's rewards and its standard error (outputs pooled over prompts); null without per-prompt rewards.</summary>
    public static (double Mean, double StandardError)? Reward(EvaluatedPoint point)
    {
        ArgumentNullException.ThrowIfNull(point);
        if (point.PromptRewards is not { Count: > 0 } r) return null;
        var all = r.Prompts.SelectMany(x => x).ToArray();
        if (all.Length < 2) return null;
        double mean = all.Average(), variance = all.Sum(x => (x - mean) * (x - mean)) / (all.Length - 1);
        return (mean, Math.Sqrt(variance / all.Length));
    }

    /// <summary>(measured - exact) / standard error; null where the error is zero or not finite.</summary>
    public static double? StandardErrorsFrom(double measured, double exact, double standardError) =>
        standardError > 0 && double.IsFinite(standardError) ? (measured - exact) / standardError : null;
}

/// <summary>
/// A measured point read against its exact curve on a tabular model: best-of-n against the exact best-of-n at the same
/// n (win-rate and reward), token-wise CD with the exact soft value against pi*_beta at the same beta (KL and reward).
/// </summary>
/// <param name="Point">The point's id.</param>
/// <param name="Curve">The exact curve it is read against.</param>
/// <param name="Parameter">n or beta of the curve point.</param>
/// <param name="KlZ">(KL estimate - exact KL) / its standard error; null for best-of-n, whose estimate KLhat [M9] is biased upwards by design.</param>
/// <param name="RewardZ">(mean reward - exact expected reward) / its standard error.</param>
/// <param name="WinRateZ">(win-rate - exact win-rate) / its standard error (from the 95% interval); null where the interval is empty.</param>
/// <param name="WhereTheoryPutsIt">Every z that exists within <see cref="FrontierAnalysis.CheckZ"/> (and at least one exists).</param>
public sealed record ExactCheck(
    string Point, string Curve, double Parameter, double Kl, double KlExact, double? KlZ, double Reward, double RewardExact, double? RewardZ,
    double WinRate, double WinRateExact, double? WinRateZ, bool WhereTheoryPutsIt);

/// <summary>The frontier report's checks against exact curves (tabular models).</summary>
public static class FrontierChecks
{
    /// <summary>
    /// The tabular checks of the frontier report. <paramref name="bestOfN"/>: the exact best-of-n curve (parameter n);
    /// <paramref name="frontierAt"/>: pi*_beta at a beta (null: no token-wise check, e.g. the value is not the exact soft
    /// value or token-wise CD does not see the whole vocabulary). Only single-prompt runs are checked (the curves are the first prompt's).
    /// </summary>
    public static IReadOnlyList<ExactCheck> Tabular(IReadOnlyList<EvaluatedPoint> points, ExactCurve? bestOfN, Func<double, ExactCurvePoint?>? frontierAt)
    {
        ArgumentNullException.ThrowIfNull(points);
        var checks = new List<ExactCheck>();
        foreach (var p in points.Where(p => p.Prompts == 1))
        {
            if (FrontierAnalysis.Reward(p) is not { } reward) continue;
            double winSe = (p.WinRateUpper - p.WinRateLower) / (2 * WinRate.Z95);
            if (p.Method == EvaluationMethod.BestOfN && bestOfN?.Points.FirstOrDefault(c => c.Parameter == p.N) is { } b)
            {
                double? rz = FrontierAnalysis.StandardErrorsFrom(reward.Mean, b.ExpectedReward, reward.StandardError);
                double? wz = FrontierAnalysis.StandardErrorsFrom(p.WinRate, b.WinRate, winSe);
                checks.Add(new ExactCheck(p.Id, bestOfN.Name, p.N, p.Kl, b.Kl, null, reward.Mean, b.ExpectedReward, rz, p.WinRate, b.WinRate, wz, Judge(rz, wz)));
            }
            else if (p.Method == EvaluationMethod.Tokenwise && frontierAt?.Invoke(p.Beta) is { } f)
            {
                double? kz = FrontierAnalysis.StandardErrorsFrom(p.Kl, f.Kl, p.KlStandardError);
                double? rz = FrontierAnalysis.StandardErrorsFrom(reward.Mean, f.ExpectedReward, reward.StandardError);
                double? wz = FrontierAnalysis.StandardErrorsFrom(p.WinRate, f.WinRate, winSe);
                checks.Add(new ExactCheck(p.Id, "optimal pi*_beta (exact)", p.Beta, p.Kl, f.Kl, kz, reward.Mean, f.ExpectedReward, rz, p.WinRate, f.WinRate, wz, Judge(kz, rz, wz)));
            }
        }
        return checks;

        // A figure without spread in the sample (every output with the same reward) has no z and is not judged; a
        // point with no judged figure at all is not counted as where theory puts it.
        static bool Judge(params double?[] z) => z.Any(x => x is not null) && z.All(x => x is not { } v || Math.Abs(v) <= FrontierAnalysis.CheckZ);
    }
}
