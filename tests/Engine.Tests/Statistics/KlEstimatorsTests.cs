using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

public sealed class KlEstimatorsTests
{
    [Theory]
    // mpmath, 2500 digits (6000 for exp(-5000)), evaluating [M9] literally at the exact double log eps.
    [InlineData(-0.6931471805599453, 4, 4.9912391942347916e-1)]
    [InlineData(-6.907755278982137, 10, 1.4025850593619771)]
    [InlineData(-1.2039728043259361, 1000, 1.2039728043259361)]
    [InlineData(-690.7755278982137, 1000000, 1.2815511557964274e+1)]
    [InlineData(-0.0010005003335835344, 2, 9.9278472548477874e-4)]
    [InlineData(-4.605170185988091, 1000000, 4.6051701859880909)]
    [InlineData(-23.025850929940457, 1000000, 1.2815511557964232e+1)]
    [InlineData(-0.10536051565782628, 3, 1.0008243074493186e-1)]
    [InlineData(-13.815510557964274, 1000000, 1.278981470566829e+1)]
    [InlineData(-0.5108256237659907, 7, 5.0112796189535502e-1)]
    [InlineData(-700.0, 1000000, 1.2815511557964274e+1)]
    [InlineData(-5000.0, 1000000, 1.2815511557964274e+1)]
    [InlineData(-5000.0, 2, 1.9314718055994531e-1)]
    [InlineData(-1e-12, 5, 9.9999999999999998e-13)]
    [InlineData(-30.0, 1000000, 1.2815511557964274e+1)]
    [InlineData(-13.8, 1000000, 1.2788786285888571e+1)]
    [InlineData(-1.0, 2, 1.8803687964798985e-1)]
    [InlineData(-0.99, 50, 9.8999999821565448e-1)]
    [InlineData(-1e-300, 3, 1.0e-300)]
    [InlineData(-2.0, 1000000, 2.0)]
    [InlineData(-40.5, 1000000, 1.2815511557964274e+1)]
    [InlineData(-39.5, 1000000, 1.2815511557964274e+1)]
    [InlineData(-1.0000001, 10, 9.5191877685096535e-1)]
    [InlineData(-0.9999999, 10, 9.5191862412142666e-1)]
    [InlineData(-20.0, 2, 1.9314718055994531e-1)]
    [InlineData(-1e-05, 1000000, 1.0000000000000001e-5)]
    public void KlHat_matches_high_precision_reference(double logEps, int n, double expected)
    {
        double actual = KlEstimators.KlHatFromLogProbability(logEps, n);
        // Relative 1e-13: the log-space evaluation keeps relative accuracy even where KLhat ~ 1e-300.
        Assert.True(Math.Abs(actual - expected) <= 1e-13 * Math.Abs(expected),
            $"KLhat({logEps:R}, {n}) = {actual:R}, expected {expected:R}");
    }

    [Fact]
    public void Limits_are_the_bound_at_eps_0_and_zero_at_eps_1_or_n_1()
    {
        foreach (int n in new[] { 1, 2, 17, 1_000_000 })
        {
            Assert.Equal(BestOfN.KlUpperBound(n), KlEstimators.KlHat(0.0, n), 1e-15);
            Assert.Equal(BestOfN.KlUpperBound(n), KlEstimators.KlHatFromLogProbability(double.NegativeInfinity, n), 1e-15);
            Assert.Equal(0.0, KlEstimators.KlHat(1.0, n));
            Assert.Equal(0.0, KlEstimators.KlHat(0.37, 1));
        }
    }

    [Fact]
    public void Probability_and_log_probability_forms_agree()
    {
        var rng = new Random(17);
        for (int i = 0; i < 2000; i++)
        {
            double eps = Math.Exp(-rng.NextDouble() * 700.0);
            int n = rng.Next(1, 100_000);
            Assert.Equal(KlEstimators.KlHatFromLogProbability(Math.Log(eps), n), KlEstimators.KlHat(eps, n), 1e-15);
        }
    }

    [Fact]
    public void KlHat_decreases_in_eps_from_the_bound_to_zero()
    {
        foreach (int n in new[] { 2, 5, 100, 10_000, 1_000_000 })
        {
            double previous = BestOfN.KlUpperBound(n);
            for (double logEps = -800.0; logEps <= 0.0; logEps += 0.01)
            {
                double value = KlEstimators.KlHatFromLogProbability(logEps, n);
                Assert.True(value <= previous + 1e-14 && value >= 0.0, $"n = {n}, log eps = {logEps}: {value:R} after {previous:R}");
                previous = value;
            }
        }
    }

    [Fact]
    public void Underflowing_sequence_probabilities_give_the_bound_not_nan()
    {
        // Sequence log-probabilities of -700 and -5000: eps underflows a double, KLhat -> log n - (n-1)/n.
        KlEstimate estimate = KlEstimators.BestOfNFromLogProbabilities([-700.0, -5000.0, -1e6, double.NegativeInfinity], 16);
        Assert.Equal(BestOfN.KlUpperBound(16), estimate.Value, 1e-15);
        Assert.Equal(0.0, estimate.StandardError, 1e-15);
        Assert.Equal(4, estimate.SampleCount);
    }

    [Fact]
    public void Sample_mean_and_standard_error_are_the_textbook_ones()
    {
        double[] logEps = [Math.Log(0.5), Math.Log(0.1), Math.Log(0.01)];
        double[] values = [.. logEps.Select(le => KlEstimators.KlHatFromLogProbability(le, 8))];
        double mean = values.Average();
        double variance = values.Sum(v => (v - mean) * (v - mean)) / 2.0;
        KlEstimate estimate = KlEstimators.BestOfNFromLogProbabilities(logEps, 8);
        Assert.Equal(mean, estimate.Value, 1e-15);
        Assert.Equal(Math.Sqrt(variance / 3.0), estimate.StandardError, 1e-15);
        KlEstimate fromProbabilities = KlEstimators.BestOfNFromProbabilities([0.5, 0.1, 0.01], 8);
        Assert.Equal(estimate.Value, fromProbabilities.Value, 1e-15);
        Assert.True(double.IsNaN(KlEstimators.BestOfNFromLogProbabilities([-1.0], 8).StandardError));
    }

    [Fact]
    public void Float32_rounding_above_zero_is_tolerated_as_log_1()
    {
        Assert.Equal(0.0, KlEstimators.KlHatFromLogProbability(3e-7, 8));
        BestOfNTests.AssertArgument(() => KlEstimators.KlHatFromLogProbability(1e-3, 8), "logEps", "0.001");
    }

    [Fact]
    public void Sample_mean_of_klhat_over_best_of_n_draws_converges_to_its_expectation()
    {
        // Draw y ~ pi_n of a tabular distribution, average KLhat(p(y)): within 4.5 SE of E_{pi_n}[KLhat]
        // (two-sided false-failure rate 7e-6).
        var outcomes = new DiscreteOutcomes([0.05, 0.15, 0.3, 0.2, 0.1, 0.2], [0, 1, 2, 3, 3, 4]);
        var bon = new BestOfN(outcomes, 6);
        var rng = new Random(21);
        double[] cdf = RandomOutcomes.Cdf(bon.Probabilities);
        var logEps = new double[20_000];
        for (int i = 0; i < logEps.Length; i++)
        {
            logEps[i] = Math.Log(outcomes.Probabilities[RandomOutcomes.Sample(rng, cdf)]);
        }

        KlEstimate estimate = KlEstimators.BestOfNFromLogProbabilities(logEps, 6);
        Assert.InRange(bon.ExpectedKlHat, estimate.Value - 4.5 * estimate.StandardError, estimate.Value + 4.5 * estimate.StandardError);
    }

    [Fact]
    public void Log_likelihood_ratio_estimate_is_unbiased_for_the_exact_kl()
    {
        // [M15]: y ~ pi*_beta of a tabular model; the mean of log pi - log p within 4.5 SE of the exact KL.
        var outcomes = new DiscreteOutcomes([0.4, 0.3, 0.2, 0.1], [0.0, 0.5, 1.0, 2.0]);
        TiltedDistribution pi = AlignedFamily.KlRegularizedOptimum(outcomes, 0.7);
        var rng = new Random(8);
        double[] cdf = RandomOutcomes.Cdf(pi.Probabilities);
        const int count = 20_000;
        var logPi = new double[count];
        var logP = new double[count];
        for (int i = 0; i < count; i++)
        {
            int y = RandomOutcomes.Sample(rng, cdf);
            logPi[i] = pi.LogProbabilities[y];
            logP[i] = Math.Log(outcomes.Probabilities[y]);
        }

        KlEstimate estimate = KlEstimators.LogLikelihoodRatio(logPi, logP);
        Assert.Equal(count, estimate.SampleCount);
        Assert.InRange(pi.KlToBase, estimate.Value - 4.5 * estimate.StandardError, estimate.Value + 4.5 * estimate.StandardError);
        Assert.Equal(KlBudgetBand.Fine, estimate.Band);
    }

    [Fact]
    public void Log_likelihood_ratio_of_identical_policies_is_exactly_zero()
    {
        KlEstimate estimate = KlEstimators.LogLikelihoodRatio([-1.0, -2.5, -700.0], [-1.0, -2.5, -700.0]);
        Assert.Equal(0.0, estimate.Value);
        Assert.Equal(0.0, estimate.StandardError);
    }

    [Fact]
    public void Bad_inputs_throw_argument_exceptions_naming_the_parameter_and_value()
    {
        BestOfNTests.AssertArgument(() => KlEstimators.KlHat(1.5, 4), "eps", "1.5");
        BestOfNTests.AssertArgument(() => KlEstimators.KlHat(double.NaN, 4), "eps", "NaN");
        BestOfNTests.AssertArgument(() => KlEstimators.KlHat(0.5, 0), "n", "0");
        BestOfNTests.AssertArgument(() => KlEstimators.KlHatFromLogProbability(double.NaN, 4), "logEps", "NaN");
        BestOfNTests.AssertArgument(() => KlEstimators.BestOfNFromLogProbabilities([-1.0, 0.5], 4), "logBaseProbabilities", "0.5");
        BestOfNTests.AssertArgument(() => KlEstimators.BestOfNFromLogProbabilities([], 4), "logBaseProbabilities", "empty");
        BestOfNTests.AssertArgument(() => KlEstimators.BestOfNFromProbabilities([0.5, -0.2], 4), "baseProbabilities", "-0.2");
        BestOfNTests.AssertArgument(() => KlEstimators.LogLikelihoodRatio([-1.0, -2.0], [-1.0]), "logBase", "1");
        BestOfNTests.AssertArgument(() => KlEstimators.LogLikelihoodRatio([-1.0, double.NaN], [-1.0, -1.0]), "logAligned", "NaN");
        BestOfNTests.AssertArgument(() => KlEstimators.LogLikelihoodRatio([-1.0], [double.NegativeInfinity]), "logBase", "-Infinity");
        BestOfNTests.AssertArgument(() => KlEstimate.FromSamples([1.0, double.PositiveInfinity]), "values", "Infinity");
    }
}
