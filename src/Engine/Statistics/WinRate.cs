namespace Tilt.Engine.Statistics;

/// <summary>Which 95% interval a <see cref="WinRateEstimate"/> carries.</summary>
public enum WinRateInterval
{
    /// <summary>Wald interval with DeLong's variance of the Mann-Whitney statistic (the usual case).</summary>
    DeLong,

    /// <summary>
    /// Wilson score interval with sample size min(aligned, base): used when DeLong's variance cannot be
    /// estimated (a side has one sample) or is 0 (complete separation, or every reward tied).
    /// </summary>
    WilsonFallback,
}

/// <summary>An empirical win-rate [M10] with a 95% confidence interval.</summary>
/// <param name="Value">P(aligned &gt; base) + 1/2 P(aligned = base) over all pairs (the Mann-Whitney AUC).</param>
/// <param name="Lower">Lower end of the 95% interval, clipped to [0, 1].</param>
/// <param name="Upper">Upper end of the 95% interval, clipped to [0, 1].</param>
/// <param name="StandardError">DeLong standard error (0 when the fallback interval was used because it is 0; NaN when a side has one sample).</param>
/// <param name="AlignedCount">Number of aligned samples.</param>
/// <param name="BaseCount">Number of base samples.</param>
/// <param name="Interval">How the interval was computed.</param>
public readonly record struct WinRateEstimate(
    double Value, double Lower, double Upper, double StandardError, int AlignedCount, int BaseCount, WinRateInterval Interval);

/// <summary>Win-rates [M10]: exact for a policy over discrete outcomes, and empirical from two sets of rewards.</summary>
public static class WinRate
{
    /// <summary>z for a two-sided 95% normal interval.</summary>
    public const double Z95 = 1.959963984540054;

    /// <summary>
    /// Empirical win-rate of aligned samples against base samples under a reward, ties counting 1/2, with a
    /// 95% confidence interval. O((n + m) log(n + m)): both sides are sorted and each sample's wins are
    /// counted by binary search, never by comparing all n*m pairs.
    /// </summary>
    /// <param name="alignedRewards">Rewards of samples from the aligned policy (n &gt;= 1).</param>
    /// <param name="baseRewards">Rewards of samples from the base model (m &gt;= 1).</param>
    /// <remarks>
    /// The win-rate is the Mann-Whitney AUC, so its interval uses DeLong et al. (1988): with
    /// V10_i = wins of aligned sample i over the base samples / m and V01_j = losses of base sample j / n,
    /// Var = var(V10)/n + var(V01)/m, and the interval is value +- 1.96 sqrt(Var), clipped to [0, 1].
    /// DeLong is chosen over Hanley-McNeil because it makes no distributional assumption and handles ties
    /// exactly (they enter V10 and V01 with weight 1/2). It is a large-sample interval; see
    /// <see cref="WinRateInterval.WilsonFallback"/> for the degenerate cases.
    /// </remarks>
    public static WinRateEstimate Estimate(ReadOnlySpan<double> alignedRewards, ReadOnlySpan<double> baseRewards)
    {
        double[] aligned = SortedFinite(alignedRewards, nameof(alignedRewards));
        double[] baseline = SortedFinite(baseRewards, nameof(baseRewards));
        int n = aligned.Length;
        int m = baseline.Length;

        // V10_i: (#base below + 1/2 #base tied) / m, for each aligned sample.
        var v10 = new double[n];
        for (int i = 0; i < n; i++)
        {
            int below = LowerBound(baseline, aligned[i]);
            int tied = UpperBound(baseline, aligned[i]) - below;
            v10[i] = (below + 0.5 * tied) / m;
        }

        // V01_j: (#aligned above + 1/2 #aligned tied) / n, for each base sample.
        var v01 = new double[m];
        for (int j = 0; j < m; j++)
        {
            int atOrBelow = UpperBound(aligned, baseline[j]);
            int tied = atOrBelow - LowerBound(aligned, baseline[j]);
            v01[j] = (n - atOrBelow + 0.5 * tied) / n;
        }

        double value = Mean(v10);
        if (n < 2 || m < 2)
        {
            return Wilson(value, n, m, double.NaN);
        }

        double variance = SampleVariance(v10) / n + SampleVariance(v01) / m;
        double se = Math.Sqrt(variance);
        if (se == 0.0)
        {
            return Wilson(value, n, m, 0.0);
        }

        return new WinRateEstimate(
            value, Math.Max(0.0, value - Z95 * se), Math.Min(1.0, value + Z95 * se), se, n, m, WinRateInterval.DeLong);
    }

    /// <summary>
    /// Exact win-rate [M10] of a policy pi over the outcomes of <paramref name="outcomes"/> against the base p:
    /// sum_y pi(y) (F-(y) + c(y)/2).
    /// </summary>
    /// <param name="outcomes">The base distribution and rewards.</param>
    /// <param name="policy">pi(y) per outcome, a distribution (same validation as p).</param>
    public static double Exact(DiscreteOutcomes outcomes, ReadOnlySpan<double> policy)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        if (policy.Length != outcomes.Count)
        {
            throw new ArgumentException($"policy has {policy.Length} entries but outcomes has {outcomes.Count}.", nameof(policy));
        }

        ProbabilityVector.Validate(policy, nameof(policy));
        var sum = new CompensatedSum();
        for (int i = 0; i < policy.Length; i++)
        {
            int g = outcomes.GroupOf(i);
            sum.Add(policy[i] * (outcomes.MassBelow(g) + 0.5 * outcomes.GroupMass(g)));
        }

        return sum.Value;
    }

    private static WinRateEstimate Wilson(double value, int n, int m, double se)
    {
        // Wilson score interval for a proportion, treating the smaller side as the number of trials: the
        // pairs are not independent, and the smaller side bounds how much information they carry.
        int trials = Math.Min(n, m);
        double z2 = Z95 * Z95;
        double denominator = 1.0 + z2 / trials;
        double centre = (value + z2 / (2.0 * trials)) / denominator;
        double half = Z95 * Math.Sqrt(value * (1.0 - value) / trials + z2 / (4.0 * trials * trials)) / denominator;
        return new WinRateEstimate(
            value, Math.Max(0.0, centre - half), Math.Min(1.0, centre + half), se, n, m, WinRateInterval.WilsonFallback);
    }

    private static double[] SortedFinite(ReadOnlySpan<double> values, string name)
    {
        if (values.IsEmpty)
        {
            throw new ArgumentException($"{name} is empty; a win-rate needs at least one sample on each side.", name);
        }

        var sorted = values.ToArray();
        for (int i = 0; i < sorted.Length; i++)
        {
            if (!double.IsFinite(sorted[i]))
            {
                throw new ArgumentException($"{name}[{i}] = {ProbabilityVector.Format(sorted[i])} is not a finite reward.", name);
            }
        }

        Array.Sort(sorted);
        return sorted;
    }

    /// <summary>First index whose value is &gt;= x (= count of values below x).</summary>
    private static int LowerBound(double[] sorted, double x)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (sorted[mid] < x)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    /// <summary>First index whose value is &gt; x (= count of values at or below x).</summary>
    private static int UpperBound(double[] sorted, double x)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = lo + ((hi - lo) >> 1);
            if (sorted[mid] <= x)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    private static double Mean(double[] values)
    {
        var sum = new CompensatedSum();
        foreach (double v in values)
        {
            sum.Add(v);
        }

        return sum.Value / values.Length;
    }

    private static double SampleVariance(double[] values)
    {
        double mean = Mean(values);
        var sum = new CompensatedSum();
        foreach (double v in values)
        {
            sum.Add((v - mean) * (v - mean));
        }

        return sum.Value / (values.Length - 1);
    }
}
