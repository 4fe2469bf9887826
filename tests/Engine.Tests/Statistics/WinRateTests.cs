using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

public sealed class WinRateTests
{
    [Fact]
    public void Sorted_estimate_equals_the_all_pairs_definition()
    {
        // Integer rewards force many ties; the O((n+m) log(n+m)) counts must equal the O(nm) definition.
        var rng = new Random(31);
        for (int trial = 0; trial < 300; trial++)
        {
            double[] aligned = [.. Enumerable.Range(0, rng.Next(1, 60)).Select(_ => (double)rng.Next(8))];
            double[] baseline = [.. Enumerable.Range(0, rng.Next(1, 60)).Select(_ => (double)rng.Next(6))];
            double pairs = 0.0;
            foreach (double x in aligned)
            {
                foreach (double y in baseline)
                {
                    pairs += x > y ? 1.0 : x == y ? 0.5 : 0.0;
                }
            }

            WinRateEstimate estimate = WinRate.Estimate(aligned, baseline);
            Assert.Equal(pairs / (aligned.Length * baseline.Length), estimate.Value, 1e-14);
            Assert.True(estimate.Lower <= estimate.Value && estimate.Value <= estimate.Upper);
            Assert.InRange(estimate.Lower, 0.0, 1.0);
            Assert.InRange(estimate.Upper, 0.0, 1.0);
        }
    }

    [Fact]
    public void DeLong_variance_matches_its_definition_on_a_small_example()
    {
        // aligned (3, 1, 2), base (1, 0): V10 = (1, 0.75, 1), V01 = (1 - 1/6 ... ) computed by hand:
        // base 1: aligned above = 2 (2, 3), tied = 1 -> (2 + 0.5) / 3; base 0: all 3 above -> 1.
        double[] v10 = [1.0, 0.75, 1.0];
        double[] v01 = [2.5 / 3.0, 1.0];
        double auc = v10.Average();
        double var10 = v10.Sum(v => (v - auc) * (v - auc)) / 2.0;
        double mean01 = v01.Average();
        double var01 = v01.Sum(v => (v - mean01) * (v - mean01)) / 1.0;
        double se = Math.Sqrt(var10 / 3.0 + var01 / 2.0);

        WinRateEstimate estimate = WinRate.Estimate([3.0, 1.0, 2.0], [1.0, 0.0]);
        Assert.Equal(WinRateInterval.DeLong, estimate.Interval);
        Assert.Equal(auc, estimate.Value, 1e-15);
        Assert.Equal(mean01, estimate.Value, 1e-15);
        Assert.Equal(se, estimate.StandardError, 1e-15);
        Assert.Equal(Math.Max(0.0, auc - WinRate.Z95 * se), estimate.Lower, 1e-15);
        Assert.Equal(Math.Min(1.0, auc + WinRate.Z95 * se), estimate.Upper, 1e-15);
    }

    [Fact]
    public void Confidence_interval_covers_the_true_win_rate_about_95_percent_of_the_time()
    {
        // Aligned samples from exact best-of-4 of a discrete p with ties, base samples from p; the truth is
        // BestOfN.WinRate. 400 seeded repetitions of 150 vs 150. Accept coverage in [0.90, 0.99]: if the true
        // coverage were 0.95 a fresh seed would fail with probability 2e-5 (0.94: 7e-4; DeLong is a
        // large-sample interval and runs slightly under nominal with heavy ties).
        var outcomes = new DiscreteOutcomes([0.1, 0.2, 0.15, 0.25, 0.05, 0.25], [1, 3, 3, 2, 5, 0]);
        var bon = new BestOfN(outcomes, 4);
        double[] alignedCdf = RandomOutcomes.Cdf(bon.Probabilities);
        double[] baseCdf = RandomOutcomes.Cdf(outcomes.Probabilities);
        var rng = new Random(2024);
        const int repetitions = 400;
        int covered = 0;
        var aligned = new double[150];
        var baseline = new double[150];
        for (int rep = 0; rep < repetitions; rep++)
        {
            for (int i = 0; i < aligned.Length; i++)
            {
                aligned[i] = outcomes.Rewards[RandomOutcomes.Sample(rng, alignedCdf)];
                baseline[i] = outcomes.Rewards[RandomOutcomes.Sample(rng, baseCdf)];
            }

            WinRateEstimate estimate = WinRate.Estimate(aligned, baseline);
            if (estimate.Lower <= bon.WinRate && bon.WinRate <= estimate.Upper)
            {
                covered++;
            }
        }

        Assert.InRange(covered / (double)repetitions, 0.90, 0.99);
    }

    [Fact]
    public void Degenerate_samples_fall_back_to_a_wilson_interval()
    {
        // Complete separation: DeLong's variance is 0; the fallback still gives a non-trivial lower end.
        WinRateEstimate separated = WinRate.Estimate([5.0, 6.0, 7.0, 8.0, 9.0], [1.0, 2.0, 3.0, 4.0, 4.5]);
        Assert.Equal(1.0, separated.Value);
        Assert.Equal(WinRateInterval.WilsonFallback, separated.Interval);
        Assert.Equal(0.0, separated.StandardError);
        Assert.Equal(1.0, separated.Upper);
        // Wilson at 5/5 successes: 5 / (5 + 1.96^2) = 0.5655.
        Assert.Equal(5.0 / (5.0 + WinRate.Z95 * WinRate.Z95), separated.Lower, 1e-12);

        // Every reward tied: 1/2, and a wide interval rather than a zero-width one.
        WinRateEstimate tied = WinRate.Estimate([1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]);
        Assert.Equal(0.5, tied.Value);
        Assert.True(tied.Lower < 0.2 && tied.Upper > 0.8);

        // One aligned sample: no variance estimate on that side.
        WinRateEstimate single = WinRate.Estimate([2.0], [1.0, 3.0, 2.0]);
        Assert.Equal(0.5, single.Value);
        Assert.Equal(WinRateInterval.WilsonFallback, single.Interval);
        Assert.True(double.IsNaN(single.StandardError));
    }

    [Fact]
    public void Exact_win_rate_of_a_policy_follows_M10()
    {
        var outcomes = new DiscreteOutcomes([0.2, 0.3, 0.5], [0.0, 1.0, 1.0]);
        // The base policy against itself: exactly 1/2.
        Assert.Equal(0.5, WinRate.Exact(outcomes, [0.2, 0.3, 0.5]), 1e-15);
        // All mass on a top outcome: beats the bottom 0.2, ties the 0.8 group -> 0.2 + 0.4.
        Assert.Equal(0.6, WinRate.Exact(outcomes, [0.0, 1.0, 0.0]), 1e-15);
        Assert.Equal(new BestOfN(outcomes, 9).WinRate, WinRate.Exact(outcomes, new BestOfN(outcomes, 9).Probabilities.ToArray()), 1e-14);
    }

    [Fact]
    public void Bad_inputs_throw_argument_exceptions_naming_the_parameter_and_value()
    {
        BestOfNTests.AssertArgument(() => WinRate.Estimate([], [1.0]), "alignedRewards", "empty");
        BestOfNTests.AssertArgument(() => WinRate.Estimate([1.0], []), "baseRewards", "empty");
        BestOfNTests.AssertArgument(() => WinRate.Estimate([1.0, double.NaN], [1.0]), "alignedRewards", "NaN");
        var outcomes = new DiscreteOutcomes([0.5, 0.5], [0.0, 1.0]);
        BestOfNTests.AssertArgument(() => WinRate.Exact(outcomes, [1.0]), "policy", "1");
        BestOfNTests.AssertArgument(() => WinRate.Exact(outcomes, [0.7, 0.7]), "policy", "1.4");
    }
}
