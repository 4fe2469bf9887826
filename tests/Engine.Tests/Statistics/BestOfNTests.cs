using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

public sealed class BestOfNTests
{
    [Fact]
    public void Binary_example_matches_M8_for_n_up_to_64()
    {
        // [M8]: p = (1/2, 1/2), r = (0, 1): pi_n(0) = 2^-n and KL = log 2 - h(2^-n).
        var outcomes = new DiscreteOutcomes([0.5, 0.5], [0.0, 1.0]);
        for (int n = 1; n <= 64; n++)
        {
            var bon = new BestOfN(outcomes, n);
            double a = Math.Pow(2.0, -n);
            double entropy = -a * Math.Log(a) - (1.0 - a) * AccurateMath.Log1p(-a);
            Assert.Equal(a, bon.Probabilities[0], 1e-12 * a);
            Assert.Equal(1.0 - a, bon.Probabilities[1], 1e-12);
            Assert.Equal(Math.Log(2.0) - entropy, bon.Kl, 1e-12);
            Assert.True(bon.Kl <= bon.KlBound + 1e-15, $"n = {n}");
        }
    }

    [Fact]
    public void Binary_example_at_n_4_gives_the_numbers_the_CLI_prints()
    {
        var bon = new BestOfN(new DiscreteOutcomes([0.5, 0.5], [0.0, 1.0]), 4);
        Assert.Equal(0.0625, bon.Probabilities[0], 1e-15);
        Assert.Equal(Math.Log(2.0) + 0.0625 * Math.Log(0.0625) + 0.9375 * Math.Log(0.9375), bon.Kl, 1e-15);
        Assert.Equal(Math.Log(4.0) - 0.75, bon.KlBound, 1e-15);
        // Both outcomes have eps = 1/2, so E[KLhat] = KLhat(1/2) whatever pi_n is.
        Assert.Equal(KlEstimators.KlHat(0.5, 4), bon.ExpectedKlHat, 1e-15);
        // 1 - 1/2 [1/2 (1/16 + 0) + 1/2 (1 + 1/16)] = 23/32.
        Assert.Equal(23.0 / 32.0, bon.WinRate, 1e-15);
        Assert.Equal(0.8, bon.WinRateBound, 1e-15);
        Assert.Equal(0.9375, bon.ExpectedReward, 1e-15);
    }

    [Fact]
    public void Exact_kl_never_exceeds_the_M7_bound_on_thousands_of_random_distributions()
    {
        // Random sizes (1..40), ties, zeros, near-degenerate and 1e-300 masses; n log-uniform in [1, 10^4].
        var rng = new Random(3);
        for (int trial = 0; trial < 3000; trial++)
        {
            var draw = RandomOutcomes.Draw(rng, 40);
            int n = (int)Math.Round(Math.Exp(rng.NextDouble() * Math.Log(1e4)));
            var bon = new BestOfN(RandomOutcomes.Outcomes(draw), n);

            Assert.True(double.IsFinite(bon.Kl) && bon.Kl >= 0.0, $"trial {trial}: KL = {bon.Kl}");
            // 1e-12: rounding of a sum of terms of size <= log n, far below any real violation.
            Assert.True(bon.Kl <= bon.KlBound + 1e-12, $"trial {trial}, n = {n}: KL {bon.Kl:R} > bound {bon.KlBound:R}");
            Assert.Equal(1.0, bon.Probabilities.Sum(), 1e-12);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(10)]
    [InlineData(100)]
    public void Bound_is_tight_when_every_outcome_is_rare(int n)
    {
        // m = 10^5 equally likely outcomes, distinct rewards: n p = n / m << 1 for all of them.
        const int m = 100_000;
        var p = Enumerable.Repeat(1.0 / m, m).ToArray();
        var r = Enumerable.Range(0, m).Select(i => (double)i).ToArray();
        var bon = new BestOfN(new DiscreteOutcomes(p, r), n);
        Assert.InRange(bon.Kl / bon.KlBound, 1.0 - 1e-6, 1.0 + 1e-12);
    }

    [Fact]
    public void Bound_is_loose_when_the_chosen_outcome_is_likely()
    {
        // n p = 500 >> 1: pi_n is almost surely outcome 1, KL -> log 2, while the bound grows like log n.
        var bon = new BestOfN(new DiscreteOutcomes([0.5, 0.5], [0.0, 1.0]), 1000);
        Assert.Equal(Math.Log(2.0), bon.Kl, 1e-12);
        Assert.True(bon.Kl / bon.KlBound < 0.15);
    }

    [Fact]
    public void Large_n_and_tiny_probabilities_stay_finite_and_correct()
    {
        // n = 10^6 with a top outcome of mass 1e-300: 1 - (1 - 1e-300)^n is 0 in naive arithmetic.
        const int n = 1_000_000;
        var bon = new BestOfN(new DiscreteOutcomes([0.5, 0.5, 1e-300], [0.0, 1.0, 2.0]), n);

        // pi_n(top) = 1 - (1 - eps)^n = n eps (1 - (n-1) eps / 2 + ...) = 1e-294 to double precision.
        Assert.Equal(n * 1e-300, bon.Probabilities[2], 1e-12 * n * 1e-300);
        // pi_n(bottom) = 2^-n underflows, but its log is exact: n log(1/2).
        Assert.Equal(0.0, bon.Probabilities[0]);
        Assert.Equal(n * Math.Log(0.5), bon.LogProbabilities[0], 1e-12 * n);
        Assert.Equal(1.0, bon.Probabilities[1], 1e-15);
        // KL = log 2 + O(1e-294 * log n); win-rate = 3/4 (the middle outcome ties with itself half the time).
        Assert.Equal(Math.Log(2.0), bon.Kl, 1e-14);
        Assert.Equal(0.75, bon.WinRate, 1e-14);
        Assert.Equal(Math.Log(2.0), bon.ExpectedKlHat, 1e-14);
    }

    [Fact]
    public void Tiny_masses_keep_full_relative_accuracy_in_the_kl()
    {
        // Bottom outcome nearly certain, three outcomes of 1e-300 on top (two of them tied).
        // Series references: pi_n(top) = n 1e-300, pi_n(each tied) = n 1e-300 (their group gets n 2e-300),
        // KL = 3 n 1e-300 (log n - 1) to relative 1e-6 (the inputs themselves sum to 1 only to 3e-300).
        const int n = 1_000_000;
        var bon = new BestOfN(new DiscreteOutcomes([1.0, 1e-300, 1e-300, 1e-300], [0.0, 1.0, 1.0, 2.0]), n);
        Assert.Equal(n * 1e-300, bon.Probabilities[3], 1e-12 * n * 1e-300);
        Assert.Equal(n * 1e-300, bon.Probabilities[1], 1e-12 * n * 1e-300);
        Assert.Equal(n * 1e-300, bon.Probabilities[2], 1e-12 * n * 1e-300);
        double expected = 3.0 * n * 1e-300 * (Math.Log(n) - 1.0);
        Assert.Equal(expected, bon.Kl, 1e-6 * expected);
    }

    [Fact]
    public void Large_n_matches_direct_powers_on_exactly_representable_cdfs()
    {
        // Dyadic masses k 2^-24 make every F and F- an exact double, so Math.Pow(F, n) - Math.Pow(F-, n) is
        // accurate (the two powers differ by a factor exp(-n p / F) <= 0.94 here): an independent reference.
        const int n = 1_000_000;
        const int top = 20;
        var p = new double[top + 1];
        var r = new double[top + 1];
        double rest = 1.0;
        for (int k = 1; k <= top; k++)
        {
            p[k] = k * Math.Pow(2.0, -24);
            r[k] = k;
            rest -= p[k];
        }

        p[0] = rest;
        var bon = new BestOfN(new DiscreteOutcomes(p, r), n);

        double above = 0.0;
        double kl = 0.0;
        for (int k = top; k >= 0; k--)
        {
            double cdf = 1.0 - above;
            double expected = Math.Pow(cdf, n) - Math.Pow(cdf - p[k], n);
            // Math.Pow's error is ~1 ulp of F^n, i.e. relative 1e-16 / (1 - 0.94) after the subtraction.
            Assert.Equal(expected, bon.Probabilities[k], 1e-13 * expected + 1e-300);
            if (expected > 0.0)
            {
                kl += expected * Math.Log(expected / p[k]);
            }

            above += p[k];
        }

        Assert.Equal(kl, bon.Kl, 1e-12);
        Assert.Equal(1.0, bon.Probabilities.Sum(), 1e-13);
    }

    [Fact]
    public void Ties_share_their_group_mass_in_proportion_to_p()
    {
        // [M5] with c(y): tied outcomes 1 and 2 (masses 0.1 and 0.3) split F^n - F-^n as 1 : 3.
        var bon = new BestOfN(new DiscreteOutcomes([0.6, 0.1, 0.3], [0.0, 1.0, 1.0]), 3);
        double group = 1.0 - Math.Pow(0.6, 3);
        Assert.Equal(0.25 * group, bon.Probabilities[1], 1e-15);
        Assert.Equal(0.75 * group, bon.Probabilities[2], 1e-15);
        Assert.Equal(Math.Pow(0.6, 3), bon.Probabilities[0], 1e-15);
    }

    [Fact]
    public void Expected_klhat_lies_between_the_exact_kl_and_the_bound()
    {
        // Found numerically (not in docs/math.md): KL <= E_{pi_n}[KLhat] <= log n - (n-1)/n, ties included.
        var rng = new Random(11);
        for (int trial = 0; trial < 2000; trial++)
        {
            var draw = RandomOutcomes.Draw(rng, 30);
            int n = (int)Math.Round(Math.Exp(rng.NextDouble() * Math.Log(1e4)));
            var bon = new BestOfN(RandomOutcomes.Outcomes(draw), n);
            double slack = 1e-11 * Math.Max(1.0, bon.KlBound);
            Assert.True(bon.Kl <= bon.ExpectedKlHat + slack, $"trial {trial}, n = {n}: KL {bon.Kl:R} > E[KLhat] {bon.ExpectedKlHat:R}");
            Assert.True(bon.ExpectedKlHat <= bon.KlBound + slack, $"trial {trial}, n = {n}: E[KLhat] {bon.ExpectedKlHat:R} > bound {bon.KlBound:R}");
        }
    }

    [Fact]
    public void Expected_klhat_is_exact_in_the_continuous_like_and_the_concentrated_limits()
    {
        // Continuous-like: every outcome rare, so KL, E[KLhat] and the bound agree.
        const int m = 100_000;
        var uniform = new DiscreteOutcomes(Enumerable.Repeat(1.0 / m, m).ToArray(), Enumerable.Range(0, m).Select(i => (double)i).ToArray());
        var rare = new BestOfN(uniform, 10);
        Assert.Equal(rare.KlBound, rare.ExpectedKlHat, 1e-6);
        Assert.Equal(rare.Kl, rare.ExpectedKlHat, 1e-6);

        // Concentrated: n = 10^4 puts pi_n on the unique top outcome (p = 1/4): both are log 4.
        var top = new BestOfN(new DiscreteOutcomes([0.5, 0.25, 0.25], [0.0, 0.0, 1.0]), 10_000);
        Assert.Equal(Math.Log(4.0), top.Kl, 1e-12);
        Assert.Equal(Math.Log(4.0), top.ExpectedKlHat, 1e-12);

        // In between it is strictly between: the binary example at n = 4.
        var binary = new BestOfN(new DiscreteOutcomes([0.5, 0.5], [0.0, 1.0]), 4);
        Assert.True(binary.Kl < binary.ExpectedKlHat - 0.01 && binary.ExpectedKlHat < binary.KlBound - 0.1);
    }

    [Fact]
    public void Win_rate_equals_its_definition_and_never_exceeds_n_over_n_plus_1()
    {
        // [M10] closed form against the definition E_{y~pi_n} E_{z~p}[1(r(y) > r(z)) + 1/2 1(=)], by all pairs.
        var rng = new Random(5);
        for (int trial = 0; trial < 1000; trial++)
        {
            var draw = RandomOutcomes.Draw(rng, 25);
            int n = rng.Next(1, 300);
            var outcomes = RandomOutcomes.Outcomes(draw);
            var bon = new BestOfN(outcomes, n);

            double pairs = 0.0;
            for (int i = 0; i < outcomes.Count; i++)
            {
                for (int j = 0; j < outcomes.Count; j++)
                {
                    double score = outcomes.Rewards[i] > outcomes.Rewards[j] ? 1.0 : outcomes.Rewards[i] == outcomes.Rewards[j] ? 0.5 : 0.0;
                    pairs += bon.Probabilities[i] * outcomes.Probabilities[j] * score;
                }
            }

            Assert.Equal(pairs, bon.WinRate, 1e-12);
            Assert.Equal(pairs, WinRate.Exact(outcomes, bon.Probabilities.ToArray()), 1e-12);
            Assert.True(bon.WinRate <= bon.WinRateBound + 1e-15, $"trial {trial}");
            Assert.True(bon.WinRate >= 0.5 - 1e-15, $"trial {trial}: best-of-n never loses to p on average");
        }
    }

    [Fact]
    public void Win_rate_reaches_n_over_n_plus_1_only_at_n_1_or_in_the_continuous_limit()
    {
        // n = 1: exactly 1/2 for any distribution, ties or not.
        Assert.Equal(0.5, new BestOfN(new DiscreteOutcomes([0.2, 0.3, 0.5], [1.0, 1.0, 0.0]), 1).WinRate, 1e-15);

        // Distinct rewards, n >= 2: strictly below the bound. the usual statement of [M10] claims equality here, which
        // holds only for continuous rewards. For m equally likely outcomes the gap is the trapezoid-rule
        // error of integrating u^n on a grid of step 1/m: n / (12 m^2) + O(n^3 / m^4).
        const int n = 5;
        foreach (int m in new[] { 100, 1000, 10000 })
        {
            var p = Enumerable.Repeat(1.0 / m, m).ToArray();
            var r = Enumerable.Range(0, m).Select(i => (double)i).ToArray();
            var bon = new BestOfN(new DiscreteOutcomes(p, r), n);
            double gap = bon.WinRateBound - bon.WinRate;
            Assert.True(gap > 0.0);
            Assert.Equal(1.0, gap * 12.0 * m * m / n, 1e-3);
        }

        // Ties lower the win-rate further: merging two outcomes' rewards.
        var distinct = new BestOfN(new DiscreteOutcomes([0.25, 0.25, 0.25, 0.25], [0.0, 1.0, 2.0, 3.0]), 3);
        var tied = new BestOfN(new DiscreteOutcomes([0.25, 0.25, 0.25, 0.25], [0.0, 1.0, 1.0, 3.0]), 3);
        Assert.True(tied.WinRate < distinct.WinRate && distinct.WinRate < distinct.WinRateBound);
    }

    [Fact]
    public void N_of_1_returns_the_base_distribution()
    {
        var rng = new Random(9);
        for (int trial = 0; trial < 200; trial++)
        {
            var draw = RandomOutcomes.Draw(rng, 20);
            var bon = new BestOfN(RandomOutcomes.Outcomes(draw), 1);
            for (int i = 0; i < draw.Probabilities.Length; i++)
            {
                // Log space turns an absolute error of ~1e-16 |log p| into the relative error of p: 1e-13 at p = 1e-300.
                Assert.Equal(draw.Probabilities[i], bon.Probabilities[i], 1e-12 * draw.Probabilities[i] + 1e-300);
            }

            Assert.Equal(0.0, bon.Kl, 1e-14);
            Assert.Equal(0.0, bon.ExpectedKlHat, 1e-14);
        }
    }

    [Fact]
    public void Cumulative_masses_follow_M5_definitions()
    {
        var outcomes = new DiscreteOutcomes([0.1, 0.2, 0.3, 0.4], [2.0, 1.0, 2.0, 0.0]);
        Assert.Equal(3, outcomes.TieGroupCount);
        Assert.Equal(1.0, outcomes.CumulativeProbability(0), 1e-15);
        Assert.Equal(0.6, outcomes.CumulativeProbabilityBelow(0), 1e-15);
        Assert.Equal(0.4, outcomes.TieProbability(2), 1e-15);
        Assert.Equal(0.6, outcomes.CumulativeProbability(1), 1e-15);
        Assert.Equal(0.0, outcomes.CumulativeProbabilityBelow(3));
        Assert.Equal(0.1 * 2 + 0.2 * 1 + 0.3 * 2, outcomes.ExpectedReward(), 1e-15);
    }

    [Fact]
    public void Bad_inputs_throw_argument_exceptions_naming_the_parameter_and_value()
    {
        AssertArgument(() => new DiscreteOutcomes([0.5, -0.1, 0.6], [0, 1, 2]), "probabilities", "-0.1");
        AssertArgument(() => new DiscreteOutcomes([0.5, double.NaN], [0, 1]), "probabilities", "NaN");
        AssertArgument(() => new DiscreteOutcomes([0.5, 0.4], [0, 1]), "probabilities", "0.9");
        AssertArgument(() => new DiscreteOutcomes([], []), "probabilities", "empty");
        AssertArgument(() => new DiscreteOutcomes([0.5, 0.5], [0, 1, 2]), "rewards", "3");
        AssertArgument(() => new DiscreteOutcomes([0.5, 0.5], [0, double.PositiveInfinity]), "rewards", "Infinity");
        var outcomes = new DiscreteOutcomes([0.5, 0.5], [0, 1]);
        AssertArgument(() => new BestOfN(outcomes, 0), "n", "0");
        AssertArgument(() => new BestOfN(outcomes, -5), "n", "-5");
        AssertArgument(() => BestOfN.KlUpperBound(0), "n", "0");
        AssertArgument(() => outcomes.TieProbability(2), "outcome", "2");
    }

    internal static void AssertArgument(Func<object> action, string parameter, string valueText)
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => action());
        Assert.Equal(parameter, e.ParamName);
        Assert.Contains(valueText, e.Message, StringComparison.Ordinal);
    }
}
