using System.Diagnostics;
using System.Globalization;
using Tilt.Engine.Rewards;
using Tilt.Engine.Rewards.Specs;
using static Tilt.Engine.Tests.Rewards.RewardTestData;

namespace Tilt.Engine.Tests.Rewards;

/// <summary>calibrated(SPEC) [M28]: mid-rank quantiles among the call's candidates of the same prompt.</summary>
public sealed class CalibratedRewardTests
{
    /// <summary>A reward that reads the number written as the candidate's text, so a test sets every raw reward.</summary>
    private static readonly IReward Raw = new CallbackReward(c => double.Parse(c.Text, CultureInfo.InvariantCulture), "raw");

    private static RewardInput Scored(double raw, string prompt = "Once upon a time") =>
        new() { Prompt = prompt, Text = raw.ToString("R", CultureInfo.InvariantCulture), Tokens = [], IsFinished = true };

    private static double[] Calibrate(params double[] raw) =>
        Score(new CalibratedReward(Raw), raw.Select(r => Scored(r)).ToArray());

    [Fact]
    public void Distinct_rewards_get_rank_minus_a_half_over_n()
    {
        // Ranks 3, 1, 4, 2 of 4: (k - 1/2) / 4, whatever the order and the scale of the raw values.
        Assert.Equal([5 / 8.0, 1 / 8.0, 7 / 8.0, 3 / 8.0], Calibrate(0.3, -1e6, 1e9, 0.2));
    }

    [Fact]
    public void Ties_share_the_mid_rank()
    {
        // (#less + #equal / 2) / n: the two 1s have 0 below and 2 equal, the 2 has 2 below, the three 3s have 3 below.
        Assert.Equal([1 / 6.0, 4.5 / 6, 1 / 6.0, 2.5 / 6, 4.5 / 6, 4.5 / 6], Calibrate(1, 3, 1, 2, 3, 3));
        Assert.Equal([0.5, 0.5, 0.5], Calibrate(7, 7, 7));
    }

    [Fact]
    public void A_lone_candidate_gets_one_half()
    {
        Assert.Equal([0.5], Calibrate(-42));
        Assert.Equal(0.5, RewardSpec.Parse("calibrated(length:5)").Score(Candidate("x", tokens: 3)));
    }

    [Fact]
    public void Each_prompt_is_ranked_against_its_own_candidates_only()
    {
        // Interleaved prompts whose rewards lie far apart: pooled, every "b" candidate would rank above every "a" one.
        RewardInput[] batch = [Scored(100, "b"), Scored(1, "a"), Scored(300, "b"), Scored(2, "a"), Scored(200, "b"), Scored(5, "c")];
        Assert.Equal([1 / 6.0, 1 / 4.0, 5 / 6.0, 3 / 4.0, 3 / 6.0, 0.5], Score(new CalibratedReward(Raw), batch));
    }

    [Fact]
    public void Values_of_base_samples_are_uniform()
    {
        // 500 calls of 3 prompts x 64 i.i.d. base samples, interleaved; each prompt has its own skewed reward law
        // (exponential, scale and shift per prompt). For a continuous reward the rank of a fixed sample among its
        // group is uniform on 1..n, so its calibrated value is uniform on {(k - 1/2) / n}, which is within 1/(2n) of
        // U(0, 1) in Kolmogorov distance. KS at false-failure rate 1e-3: D > 1.949 / sqrt(M) + 1/(2n) fails. A
        // calibration that pooled the prompts would give D near 1/2.
        const int Calls = 500, N = 64;
        (double Scale, double Shift)[] laws = [(1, 0), (1000, 5), (0.01, -3)];
        var rng = new Random(26);
        var reward = new CalibratedReward(Raw);
        var firstOfEach = new List<double>();
        for (int call = 0; call < Calls; call++)
        {
            var batch = new RewardInput[laws.Length * N];
            for (int i = 0; i < batch.Length; i++)
            {
                var (scale, shift) = laws[i % laws.Length];
                batch[i] = Scored(shift - scale * Math.Log(1 - rng.NextDouble()), prompt: $"p{i % laws.Length}");
            }

            double[] values = Score(reward, batch);
            firstOfEach.AddRange(values.Take(laws.Length));
            Assert.All(Enumerable.Range(0, laws.Length), p => Assert.Equal(0.5, values.Where((_, i) => i % laws.Length == p).Average(), 12));
        }

        double d = KolmogorovDistanceToUniform(firstOfEach);
        Assert.True(d <= 1.949 / Math.Sqrt(firstOfEach.Count) + 0.5 / N, $"KS distance {d} over {firstOfEach.Count} values");
    }

    [Fact]
    public void Calibration_gives_rewards_of_different_scales_equal_say()
    {
        // A counts 'a', B is a 1000x-scaled count of 'b'; texts trade one for the other. Calibrated, each member's
        // quantiles are 1/8, 3/8, 5/8, 7/8 in opposite orders, so their mean is 1/2 for all: neither dominates.
        string[] texts = ["bbb", "abb", "aab", "aaa"];
        var calibrated = RewardSpec.Parse("mean(calibrated(regex:a);calibrated(1000*regex:b))");
        Assert.Equal([0.5, 0.5, 0.5, 0.5], Score(calibrated, texts));

        // Uncalibrated, the 1000x member decides the ranking alone.
        double[] raw = Score(RewardSpec.Parse("mean(regex:a;1000*regex:b)"), texts);
        Assert.Equal([1500, 1000.5, 501, 1.5], raw);
    }

    [Fact]
    public void The_combination_is_the_mean_of_the_members_quantiles()
    {
        var rng = new Random(7);
        string[] texts = Enumerable.Range(0, 40).Select(_ => new string('a', rng.Next(6)) + new string('b', rng.Next(6))).ToArray();
        double[] qa = Score(RewardSpec.Parse("calibrated(regex:a)"), texts);
        double[] qb = Score(RewardSpec.Parse("calibrated(regex:b)"), texts);
        double[] combined = Score(RewardSpec.Parse("mean(calibrated(regex:a);calibrated(1000*regex:b))"), texts);
        Assert.Equal(qa.Zip(qb, (a, b) => (a + b) / 2), combined);
    }

    [Fact]
    public void A_deadline_does_not_split_the_batch()
    {
        // Chunks would each be ranked on their own; the first candidate, scored alone, would always get 1/2.
        var reward = RewardSpec.Parse("2*calibrated(regex:a)");
        RewardInput[] batch = new[] { "a", "aaa", "", "aa" }.Select(t => Candidate(t)).ToArray();
        var rewards = new double[batch.Length];
        int scored = reward.ScoreWithin(batch, rewards, ScoringBudget.Until(TimeSpan.FromMinutes(10), Stopwatch.StartNew()));
        Assert.Equal(batch.Length, scored);
        Assert.Equal([0.75, 1.75, 0.25, 1.25], rewards);
    }

    [Theory]
    [InlineData("calibrated(lexicon:sentiment)", "calibrated(lexicon:sentiment)")]
    [InlineData(" calibrated ( 0.5*length:3 + regex:a ) ", "calibrated(0.5*length:3+regex:a)")]
    [InlineData("mean(calibrated(regex:a);calibrated(1e3*regex:b))", "mean(calibrated(regex:a);calibrated(1000*regex:b))")]
    [InlineData("0.7*calibrated(regex:a)+0.3*calibrated(calibrated(length:4))", "0.7*calibrated(regex:a)+0.3*calibrated(calibrated(length:4))")]
    public void Spec_round_trips_through_its_description(string spec, string description)
    {
        IReward first = RewardSpec.Parse(spec);
        Assert.Equal(description, first.Description);
        IReward second = RewardSpec.Parse(first.Description);
        Assert.Equal(description, second.Description);
        string[] texts = ["aa b", "a", "", "aaa bb"];
        Assert.Equal(Score(first, texts), Score(second, texts));
    }

    [Theory]
    [InlineData("calibrated(regex:a;regex:b)", "has 2 members; calibrated takes one spec", "mean(calibrated(A);calibrated(B))")]
    [InlineData("calibrated()", "empty term before ')'")]
    [InlineData("calibrated(regex:a", "'calibrated(' at position 0 is not closed")]
    [InlineData("calibrated", "'calibrated' is an ensemble and needs its members in parentheses: calibrated(A)")]
    public void Bad_specs_are_named(string spec, params string[] parts)
    {
        string message = AssertTilt(() => RewardSpec.Parse(spec), parts);
        Assert.Contains($"reward spec '{spec}'", message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_non_finite_inner_reward_is_named()
    {
        var reward = new CalibratedReward(new CallbackReward(c => c.Text.Length == 0 ? double.NaN : 1, "nan-on-empty"));
        AssertTilt(() => Score(reward, "a", ""), "reward 'nan-on-empty' gave NaN for candidate 1");
    }

    private static double KolmogorovDistanceToUniform(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        double d = 0;
        for (int i = 0; i < sorted.Length; i++)
        {
            d = Math.Max(d, Math.Max((i + 1.0) / sorted.Length - sorted[i], sorted[i] - (double)i / sorted.Length));
        }

        return d;
    }
}
