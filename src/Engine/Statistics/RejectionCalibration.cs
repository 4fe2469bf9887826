namespace Tilt.Engine.Statistics;

/// <summary>A mean with a 95% interval and the number of observations behind it.</summary>
/// <param name="Mean">The sample mean (NaN with no observation).</param>
/// <param name="Lower">Lower end of the 95% interval (NaN with fewer than 2 observations).</param>
/// <param name="Upper">Upper end of the 95% interval.</param>
/// <param name="Count">Observations.</param>
public readonly record struct IntervalEstimate(double Mean, double Lower, double Upper, int Count)
{
    /// <summary>Mean +- t(0.975, n - 1) s / sqrt(n): Student's interval for a mean of n independent observations.</summary>
    public static IntervalEstimate OfMean(IReadOnlyList<double> values)
    {
        int n = values.Count;
        if (n == 0) return new(double.NaN, double.NaN, double.NaN, 0);
        double mean = values.Average();
        if (n == 1) return new(mean, double.NaN, double.NaN, 1);
        double variance = values.Sum(v => (v - mean) * (v - mean)) / (n - 1);
        double half = RejectionCalibration.StudentT975(n - 1) * Math.Sqrt(variance / n);
        return new(mean, mean - half, mean + half, n);
    }

    /// <summary>Wilson's 95% score interval for a proportion of <paramref name="successes"/> in <paramref name="trials"/>.</summary>
    public static IntervalEstimate OfProportion(int successes, int trials)
    {
        if (trials == 0) return new(double.NaN, double.NaN, double.NaN, 0);
        double p = (double)successes / trials, z = WinRate.Z95, z2 = z * z;
        double centre = (p + z2 / (2 * trials)) / (1 + z2 / trials);
        double half = z * Math.Sqrt(p * (1 - p) / trials + z2 / (4.0 * trials * trials)) / (1 + z2 / trials);
        return new(p, Math.Max(0, centre - half), Math.Min(1, centre + half), trials);
    }
}

/// <summary>
/// What early rejection's single decision (docs/rejection.md) needs to know about its
/// scorer: how the prefix score at t tokens ranks candidates compared with the final reward (Spearman's rank correlation
/// within a prompt), and whether the rule that stops the floor(alpha U) lowest of the U unfinished candidates keeps
/// best-of-n's winner. The rule here is <c>RejectionRun.Reject</c>'s exactly (ties: the higher index is stopped first).
/// </summary>
public static class RejectionCalibration
{
    /// <summary>
    /// Mid-ranks (1-based; tied values share the mean of the ranks they span): the ranks Spearman's coefficient correlates.
    /// </summary>
    public static double[] MidRanks(ReadOnlySpan<double> values)
    {
        var copy = values.ToArray();
        var order = Enumerable.Range(0, copy.Length).OrderBy(i => copy[i]).ToArray();
        var ranks = new double[copy.Length];
        for (int start = 0; start < order.Length;)
        {
            int end = start + 1;
            while (end < order.Length && copy[order[end]] == copy[order[start]]) end++;
            double rank = (start + 1 + end) / 2.0; // mean of ranks start+1 .. end
            for (int j = start; j < end; j++) ranks[order[j]] = rank;
            start = end;
        }
        return ranks;
    }

    /// <summary>
    /// Spearman's rank correlation: Pearson's correlation of the mid-ranks (the tie-corrected coefficient). NaN when
    /// either side is constant (every value tied: the ranking says nothing) or there are fewer than 2 pairs.
    /// </summary>
    public static double Spearman(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        if (x.Length != y.Length) throw new ArgumentException($"x has {x.Length} values and y {y.Length}", nameof(y));
        if (x.Length < 2) return double.NaN;
        var rx = MidRanks(x);
        var ry = MidRanks(y);
        double mean = (x.Length + 1) / 2.0, sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < rx.Length; i++)
        {
            double a = rx[i] - mean, b = ry[i] - mean;
            sxy += a * b;
            sxx += a * a;
            syy += b * b;
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    /// <summary>
    /// One decision of early rejection: of the candidates not yet <paramref name="finished"/>, the floor(alpha U) with the
    /// lowest <paramref name="prefixScores"/> are stopped (ties: the higher index first); finished ones always stay.
    /// Returns which candidates survive.
    /// </summary>
    public static bool[] Survivors(ReadOnlySpan<double> prefixScores, ReadOnlySpan<bool> finished, double alpha)
    {
        if (prefixScores.Length != finished.Length) throw new ArgumentException("one finished flag per candidate", nameof(finished));
        if (!(alpha is >= 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be in [0, 1)");
        var kept = new bool[prefixScores.Length];
        Array.Fill(kept, true);
        var scores = prefixScores.ToArray();
        var done = finished.ToArray();
        var unfinished = Enumerable.Range(0, scores.Length).Where(i => !done[i]).ToArray();
        int reject = (int)Math.Floor(alpha * unfinished.Length);
        if (unfinished.Length < 2 || reject == 0) return kept;
        foreach (int i in unfinished.OrderBy(i => scores[i]).ThenByDescending(i => i).Take(reject)) kept[i] = false;
        return kept;
    }

    /// <summary>
    /// Whether the survivors of one decision at these prefix scores still hold best-of-n's reward (a survivor whose final
    /// reward equals the maximum: with tied maxima, keeping any of them keeps the winner's reward).
    /// </summary>
    public static bool KeepsWinner(ReadOnlySpan<double> prefixScores, ReadOnlySpan<bool> finished, ReadOnlySpan<double> finalRewards, double alpha)
    {
        var kept = Survivors(prefixScores, finished, alpha);
        double best = double.NegativeInfinity, keptBest = double.NegativeInfinity;
        for (int i = 0; i < finalRewards.Length; i++)
        {
            best = Math.Max(best, finalRewards[i]);
            if (kept[i]) keptBest = Math.Max(keptBest, finalRewards[i]);
        }
        return keptBest == best;
    }

    /// <summary>
    /// The smallest decision length whose winner-kept probability reaches <paramref name="target"/>, or null when none
    /// does. <paramref name="keptByLength"/>: (t, probability) pairs in any order.
    /// </summary>
    public static int? ChooseDecisionLength(IEnumerable<(int Tokens, double WinnerKept)> keptByLength, double target) =>
        keptByLength.Where(p => p.WinnerKept >= target).OrderBy(p => p.Tokens).Select(p => (int?)p.Tokens).FirstOrDefault();

    /// <summary>Student's t quantile t(0.975, df): exact to 3 decimals for df &lt;= 30, the normal's 1.96 beyond 120.</summary>
    public static double StudentT975(int df)
    {
        ReadOnlySpan<double> table =
        [
            12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
            2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
            2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
        ];
        if (df < 1) throw new ArgumentOutOfRangeException(nameof(df), df, "at least 1 degree of freedom");
        if (df <= 30) return table[df - 1];
        if (df <= 40) return 2.021;
        if (df <= 60) return 2.000;
        if (df <= 120) return 1.980;
        return WinRate.Z95;
    }
}
