using Tilt.Engine.Evaluation;

namespace Tilt.Engine.Tests.Evaluation;

/// <summary>evaluate --frontier: the preset's grid and the figures its report adds (docs/frontier.md).</summary>
public sealed class FrontierAnalysisTests
{
    private static EvaluatedPoint Point(string id, EvaluationMethod method, double kl, int n = 0, params double[][] rewards) => new()
    {
        Id = id, Series = "s", Method = method, N = n, Prompts = rewards.Length, Outputs = rewards.Sum(r => r.Length),
        WinRate = 0.5, WinRateLower = 0.4, WinRateUpper = 0.6, Kl = kl, KlStandardError = 0, KlMethod = "", MeanReward = 0, BaseMeanReward = 0,
        TokensEvaluatedPerOutputToken = 1, LatencyMsPerOutput = 0, FirstTextMs = 0, Seconds = 0, PromptRewards = new RewardsByPrompt(rewards),
    };

    [Fact]
    public void The_frontier_preset_sweeps_every_family_along_its_knob_at_64_outputs()
    {
        var frontier = EvaluationConfig.Frontier(16);
        Assert.Equal(64, EvaluationConfig.FrontierOutputsPerPrompt);
        Assert.Equal(
        [
            "bon-n1", "bon-n2", "bon-n4", "bon-n8", "bon-n16", "bon-n32", "bon-n64",
            "soft-bon-n16-l8", "soft-bon-n16-l2", "soft-bon-n16-l0.5", "soft-bon-n16-l0.125", "soft-bon-n16-l0.03125", "soft-bon-n16-l0.0078125",
            "blockwise-k2-m4", "blockwise-k4-m4", "blockwise-k8-m4", "blockwise-k16-m4",
            "blockwise-k2-m8", "blockwise-k4-m8", "blockwise-k8-m8", "blockwise-k16-m8",
            "blockwise-k2-m16", "blockwise-k4-m16", "blockwise-k8-m16", "blockwise-k16-m16",
            "tokenwise-b4-k16", "tokenwise-b2-k16", "tokenwise-b1-k16", "tokenwise-b0.5-k16", "tokenwise-b0.25-k16", "tokenwise-b0.125-k16", "tokenwise-b0.0625-k16",
            "beam-b2-k4-m8", "beam-b2-k8-m8",
            "rejection-n32-a0.5-e8", "rejection-n32-a0.75-e8", "rejection-n16-a0.5-e4",
        ], frontier.Select(c => c.Id));
        Assert.All(frontier, c => Assert.NotNull(c.Spec.Build()));
        // A point in both presets is the same configuration, so its stored id means the same thing under either.
        var full = EvaluationConfig.FullSweep(16).ToDictionary(c => c.Id);
        Assert.All(frontier.Where(c => full.ContainsKey(c.Id)), c => Assert.Equal(full[c.Id], c));
    }

    [Fact]
    public void A_point_is_paired_with_the_best_of_n_point_of_the_nearest_kl_and_its_win_rate_is_the_mann_whitney_count()
    {
        var bon1 = Point("bon-n1", EvaluationMethod.BestOfN, 0, 1, [0, 0]);
        var bon2 = Point("bon-n2", EvaluationMethod.BestOfN, 0.193, 2, [0, 1]);
        var bon4 = Point("bon-n4", EvaluationMethod.BestOfN, 0.636, 4, [2, 4]);
        // KL 0.5 is 0.136 from best-of-4 and 0.307 from best-of-2.
        var cd = Point("tokenwise", EvaluationMethod.Tokenwise, 0.5, 0, [1, 3]);
        EvaluatedPoint[] points = [bon1, bon2, bon4, cd];
        Assert.Same(bon4, FrontierAnalysis.NearestBestOfN(cd, points));
        Assert.Null(FrontierAnalysis.NearestBestOfN(bon2, points)); // best-of-n is the reference, not paired
        // Of the four pairs (1,2) (1,4) (3,2) (3,4) the point wins one: 1/4.
        var row = FrontierAnalysis.Rows(points, maxTokens: 48).Single(r => r.Point == "tokenwise");
        Assert.Equal("bon-n4", row.NearestBestOfN);
        Assert.Equal(0.25, row.AgainstBestOfN!.WinRate, 12);
        Assert.True(row.AgainstBestOfN.Lower < 0.25 && row.AgainstBestOfN.Upper > 0.25);
        Assert.Null(FrontierAnalysis.Rows(points, 48).Single(r => r.Point == "bon-n4").AgainstBestOfN);
        // Equally near two best-of-n points: the smaller n.
        var between = Point("mid", EvaluationMethod.Blockwise, 0.125, 0, [1, 1]);
        Assert.Same(bon1, FrontierAnalysis.NearestBestOfN(between, [bon2 with { Kl = 0.25 }, bon1, between]));
        // Points on other prompts are not paired.
        Assert.Null(FrontierAnalysis.NearestBestOfN(Point("other", EvaluationMethod.Tokenwise, 0.5, 0, [1], [2]), points));
    }

    [Fact]
    public void Kl_bounds_are_best_of_n_per_candidate_set_and_per_block()
    {
        Assert.Equal(Math.Log(16) - 15.0 / 16, FrontierAnalysis.KlBound(EvaluationMethod.BestOfN, 16, 0, 0, 48)!.Value, 12);
        Assert.Equal(Math.Log(16) - 15.0 / 16, FrontierAnalysis.KlBound(EvaluationMethod.SoftBestOfN, 16, 0, 0, 48)!.Value, 12);
        Assert.Equal(6 * (Math.Log(4) - 0.75), FrontierAnalysis.KlBound(EvaluationMethod.Blockwise, 0, 4, 8, 48)!.Value, 12);
        Assert.Equal(7 * (Math.Log(4) - 0.75), FrontierAnalysis.KlBound(EvaluationMethod.Blockwise, 0, 4, 8, 49)!.Value, 12); // a last partial block
        Assert.Equal(0, FrontierAnalysis.KlBound(EvaluationMethod.BestOfN, 1, 0, 0, 48));
        Assert.Null(FrontierAnalysis.KlBound(EvaluationMethod.Tokenwise, 0, 16, 0, 48));
        Assert.Null(FrontierAnalysis.KlBound(EvaluationMethod.Beam, 2, 8, 8, 48));
    }

    [Fact]
    public void The_median_interval_is_the_order_statistics_at_the_binomial_ranks()
    {
        var m = FrontierAnalysis.Median(Enumerable.Range(1, 100).Select(i => (double)i).Reverse().ToArray());
        Assert.Equal(50.5, m.Median);
        // ranks 50 -+ 1.96 * 10 / 2 = 40.2 and 59.8: x_(40) and x_(61) (one past the upper rank, as the interval is [x_j, x_k+1)).
        Assert.Equal(40, m.Lower);
        Assert.Equal(61, m.Upper);
        Assert.Equal(100, m.Count);
        var one = FrontierAnalysis.Median([7.0]);
        Assert.Equal((7.0, 7.0, 7.0), (one.Median, one.Lower, one.Upper));
        Assert.Throws<ArgumentException>(() => FrontierAnalysis.Median([]));
    }

    [Fact]
    public void Outputs_to_separate_scale_the_interval_as_one_over_root_outputs()
    {
        Assert.Equal(64, FrontierAnalysis.OutputsToSeparate(new PairwiseWinRate("a", "b", 0.6, 0.5, 0.7), 64)!.Value, 9);
        Assert.Equal(64 * 0.04, FrontierAnalysis.OutputsToSeparate(new PairwiseWinRate("a", "b", 0.25, 0.2, 0.3), 64)!.Value, 9);
        Assert.Null(FrontierAnalysis.OutputsToSeparate(new PairwiseWinRate("a", "b", 0.5, 0.4, 0.6), 64));
    }

    [Fact]
    public void A_best_of_n_point_on_its_exact_curve_passes_and_one_ten_errors_off_fails()
    {
        double[] rewards = [0, 1, 0, 1, 1, 0, 1, 1]; // mean 0.625, standard error 0.183
        var on = Point("bon-n4", EvaluationMethod.BestOfN, 0.6, 4, rewards) with { WinRate = 0.75, WinRateLower = 0.70, WinRateUpper = 0.80 };
        double se = Math.Sqrt(rewards.Sum(r => (r - 0.625) * (r - 0.625)) / 7 / 8);
        var curve = new ExactCurve("best-of-n (exact)", [new ExactCurvePoint(4, 0.5, 0.76, 0.625 + se)]);
        var pass = FrontierChecks.Tabular([on], curve, null).Single();
        Assert.True(pass.WhereTheoryPutsIt);
        Assert.Equal(-1, pass.RewardZ!.Value, 9);
        var far = new ExactCurve("best-of-n (exact)", [new ExactCurvePoint(4, 0.5, 0.76, 0.625 + 10 * se)]);
        Assert.False(FrontierChecks.Tabular([on], far, null).Single().WhereTheoryPutsIt);
        // Token-wise CD is read against pi*_beta at its beta, KL included.
        var cd = Point("tokenwise-b1-k0", EvaluationMethod.Tokenwise, 0.30, 0, rewards) with { Beta = 1, KlStandardError = 0.01, WinRate = 0.7, WinRateLower = 0.65, WinRateUpper = 0.75 };
        Assert.True(FrontierChecks.Tabular([cd], null, b => b == 1 ? new ExactCurvePoint(1, 0.31, 0.7, 0.625) : null).Single().WhereTheoryPutsIt);
        Assert.False(FrontierChecks.Tabular([cd], null, b => new ExactCurvePoint(b, 0.40, 0.7, 0.625)).Single().WhereTheoryPutsIt); // KL 10 errors off
        Assert.Empty(FrontierChecks.Tabular([cd], null, null)); // no exact frontier: no check
    }
}
