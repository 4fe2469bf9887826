using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

public sealed class AlignedFamilyTests
{
    private static readonly double[] P = [0.50, 0.30, 0.20];
    private static readonly double[] Q = [0.22, 0.11, 0.67];

    [Theory]
    // [M3] worked example. By hand at beta = 1: p q = (0.110, 0.033, 0.134), sum 0.277, so
    // pi = (0.397112, 0.119134, 0.483755). Digits below from mpmath at 50 digits.
    [InlineData(1.0, 0.39711191335740072, 0.11913357400722022, 0.48375451263537906, 0.22576623254732243, 1.0579715402474761)]
    [InlineData(0.5, 0.20576481591701386, 0.030864722387552079, 0.76337046169543406, 0.76959344007932851, 0.68539388651993167)]
    [InlineData(2.0, 0.47118396736468452, 0.1999064271059696, 0.32890960552934589, 0.054503338460512221, 1.286402072146601)]
    [InlineData(0.1, 3.6425285213904559e-5, 2.1342940555022202e-8, 0.99996355337184554, 1.6089954292688053, 0.40051817018441992)]
    public void Worked_example_of_M3_matches_hand_computed_numbers(double beta, double pi0, double pi1, double pi2, double kl, double crossEntropy)
    {
        TiltedDistribution pi = AlignedFamily.Tilt(P, Q, beta);
        Assert.Equal(pi0, pi.Probabilities[0], 1e-14 * pi0);
        Assert.Equal(pi1, pi.Probabilities[1], 1e-13 * pi1);
        Assert.Equal(pi2, pi.Probabilities[2], 1e-14 * pi2);
        Assert.Equal(kl, pi.KlToBase, 1e-14);
        Assert.Equal(crossEntropy, -pi.ExpectedReward, 1e-14);
        Assert.Equal(beta, pi.Beta);
    }

    [Fact]
    public void Worked_example_at_beta_1_by_hand()
    {
        TiltedDistribution pi = AlignedFamily.Tilt(P, Q, 1.0);
        Assert.Equal(0.110 / 0.277, pi.Probabilities[0], 1e-14);
        Assert.Equal(0.033 / 0.277, pi.Probabilities[1], 1e-14);
        Assert.Equal(0.134 / 0.277, pi.Probabilities[2], 1e-14);
    }

    [Fact]
    public void The_family_of_M3_is_the_optimum_of_M2_with_r_log_q()
    {
        var outcomes = new DiscreteOutcomes(P, [.. Q.Select(q => Math.Log(q))]);
        foreach (double beta in new[] { 0.05, 0.3, 1.0, 4.0, 50.0 })
        {
            TiltedDistribution tilted = AlignedFamily.Tilt(P, Q, beta);
            TiltedDistribution optimum = AlignedFamily.KlRegularizedOptimum(outcomes, beta);
            for (int i = 0; i < P.Length; i++)
            {
                Assert.Equal(tilted.Probabilities[i], optimum.Probabilities[i], 1e-14);
            }

            Assert.Equal(tilted.KlToBase, optimum.KlToBase, 1e-14);
        }
    }

    [Fact]
    public void Kl_decreases_and_reward_increases_as_beta_shrinks_on_random_distributions()
    {
        double[] betas = AlignedFamily.LogSpacedBetas(1e-3, 1e3, 61);
        var rng = new Random(41);
        for (int trial = 0; trial < 300; trial++)
        {
            var outcomes = RandomOutcomes.Outcomes(RandomOutcomes.Draw(rng, 20));
            FrontierPoint[] points = AlignedFamily.Frontier(outcomes, betas);
            for (int i = 1; i < points.Length; i++)
            {
                // Betas increase along the grid. Where pi*_beta has already collapsed onto the argmax (small
                // beta) or back onto p (large beta) consecutive values agree to rounding, hence 1e-12 relative
                // (KL reaches hundreds of nats when the argmax has p ~ 1e-200).
                Assert.True(points[i].Kl <= points[i - 1].Kl + 1e-12 * Math.Max(1.0, points[i - 1].Kl), $"trial {trial}: KL rose from {points[i - 1].Kl:R} to {points[i].Kl:R} at beta {points[i].Beta:R}");
                Assert.True(points[i].ExpectedReward <= points[i - 1].ExpectedReward + 1e-12 * Math.Max(1.0, Math.Abs(points[i - 1].ExpectedReward)), $"trial {trial}: reward rose at beta {points[i].Beta:R}");
                Assert.True(points[i].WinRate <= points[i - 1].WinRate + 1e-12, $"trial {trial}: win-rate rose at beta {points[i].Beta:R}");
            }
        }
    }

    [Fact]
    public void Kl_is_strictly_monotone_where_the_tilt_matters()
    {
        var outcomes = new DiscreteOutcomes([0.4, 0.3, 0.2, 0.1], [0.0, 0.5, 1.0, 2.0]);
        FrontierPoint[] points = AlignedFamily.Frontier(outcomes, AlignedFamily.LogSpacedBetas(0.05, 20.0, 40));
        for (int i = 1; i < points.Length; i++)
        {
            Assert.True(points[i].Kl < points[i - 1].Kl);
            Assert.True(points[i].ExpectedReward < points[i - 1].ExpectedReward);
        }
    }

    [Fact]
    public void Limits_are_p_for_large_beta_and_the_argmax_for_small_beta()
    {
        var outcomes = new DiscreteOutcomes([0.4, 0.3, 0.2, 0.1], [0.0, 0.5, 2.0, 2.0]);
        double mean = outcomes.ExpectedReward();
        double variance = outcomes.Probabilities.Select((p, i) => p * (outcomes.Rewards[i] - mean) * (outcomes.Rewards[i] - mean)).Sum();

        // Large beta: KL = Var_p(r) / (2 beta^2) + O(beta^-3); kept to full relative accuracy, not lost to log(1 + tiny).
        const double large = 1e6;
        TiltedDistribution near = AlignedFamily.KlRegularizedOptimum(outcomes, large);
        Assert.Equal(variance / (2 * large * large), near.KlToBase, 1e-5 * variance / (2 * large * large));
        Assert.Equal(mean, near.ExpectedReward, 1e-5);

        // Small beta: the argmax set {2, 3} in proportion to p; KL = -log p(argmax) = log(1 / 0.3).
        foreach (double small in new[] { 1e-3, 1e-300 })
        {
            TiltedDistribution argmax = AlignedFamily.KlRegularizedOptimum(outcomes, small);
            Assert.Equal(2.0 / 3.0, argmax.Probabilities[2], 1e-14);
            Assert.Equal(1.0 / 3.0, argmax.Probabilities[3], 1e-14);
            Assert.Equal(0.0, argmax.Probabilities[0]);
            Assert.Equal(-Math.Log(0.3), argmax.KlToBase, 1e-14);
            Assert.Equal(2.0, argmax.ExpectedReward, 1e-14);
        }
    }

    [Fact]
    public void Zeros_in_q_remove_outcomes()
    {
        TiltedDistribution pi = AlignedFamily.Tilt([0.5, 0.25, 0.25], [0.0, 0.5, 0.5], 1.0);
        Assert.Equal(0.0, pi.Probabilities[0]);
        Assert.Equal(double.NegativeInfinity, pi.LogProbabilities[0]);
        Assert.Equal(0.5, pi.Probabilities[1], 1e-15);
        Assert.Equal(Math.Log(2.0), pi.KlToBase, 1e-15);
        Assert.Equal(Math.Log(2.0), -pi.ExpectedReward, 1e-15);
    }

    [Fact]
    public void Best_of_n_never_beats_the_frontier()
    {
        // pi*_beta maximizes E[r] at its own KL [M1]-[M2]; best-of-n at the same KL can only match or trail it.
        var outcomes = new DiscreteOutcomes([0.3, 0.25, 0.2, 0.15, 0.1], [0.0, 1.0, 2.0, 3.0, 4.0]);
        foreach (int n in new[] { 2, 4, 16, 64 })
        {
            var bon = new BestOfN(outcomes, n);
            double lo = 1e-4, hi = 1e4;
            for (int i = 0; i < 200; i++)
            {
                // KL decreases in beta: bisect in log beta for KL(pi*_beta) = KL(pi_n).
                double mid = Math.Sqrt(lo * hi);
                if (AlignedFamily.KlRegularizedOptimum(outcomes, mid).KlToBase > bon.Kl)
                {
                    lo = mid;
                }
                else
                {
                    hi = mid;
                }
            }

            TiltedDistribution optimum = AlignedFamily.KlRegularizedOptimum(outcomes, Math.Sqrt(lo * hi));
            Assert.True(bon.ExpectedReward <= optimum.ExpectedReward + 1e-9, $"n = {n}: best-of-n reward {bon.ExpectedReward:R} > frontier {optimum.ExpectedReward:R}");
        }
    }

    [Fact]
    public void Log_spaced_betas_hit_both_ends()
    {
        double[] betas = AlignedFamily.LogSpacedBetas(0.01, 100.0, 5);
        Assert.Equal([0.01, 0.1, 1.0, 10.0, 100.0], betas, (a, b) => Math.Abs(a - b) <= 1e-14 * Math.Max(a, b));
        Assert.Equal(0.01, betas[0]);
        Assert.Equal(100.0, betas[^1]);
    }

    [Fact]
    public void Bad_inputs_throw_argument_exceptions_naming_the_parameter_and_value()
    {
        var outcomes = new DiscreteOutcomes(P, [0.0, 1.0, 2.0]);
        BestOfNTests.AssertArgument(() => AlignedFamily.KlRegularizedOptimum(outcomes, 0.0), "beta", "0");
        BestOfNTests.AssertArgument(() => AlignedFamily.KlRegularizedOptimum(outcomes, -2.0), "beta", "-2");
        BestOfNTests.AssertArgument(() => AlignedFamily.KlRegularizedOptimum(outcomes, double.NaN), "beta", "NaN");
        BestOfNTests.AssertArgument(() => AlignedFamily.KlRegularizedOptimum(outcomes, double.PositiveInfinity), "beta", "Infinity");
        BestOfNTests.AssertArgument(() => AlignedFamily.Tilt(P, [0.5, 0.5], 1.0), "q", "2");
        BestOfNTests.AssertArgument(() => AlignedFamily.Tilt(P, [0.5, 0.6, -0.1], 1.0), "q", "-0.1");
        BestOfNTests.AssertArgument(() => AlignedFamily.Tilt([1.0, 0.0], [0.0, 1.0], 1.0), "q", "0");
        BestOfNTests.AssertArgument(() => AlignedFamily.Tilt([0.5, 0.6], [0.5, 0.5], 1.0), "p", "1.1");
        BestOfNTests.AssertArgument(() => AlignedFamily.Frontier(outcomes, [1.0, -1.0]), "beta", "-1");
        BestOfNTests.AssertArgument(() => AlignedFamily.LogSpacedBetas(1.0, 0.5, 3), "max", "0.5");
        BestOfNTests.AssertArgument(() => AlignedFamily.LogSpacedBetas(1.0, 2.0, 1), "count", "1");
    }
}
