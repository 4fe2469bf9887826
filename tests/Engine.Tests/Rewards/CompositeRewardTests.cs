using Tilt.Engine.Rewards;
using static Tilt.Engine.Tests.Rewards.RewardTestData;

namespace Tilt.Engine.Tests.Rewards;

public sealed class CompositeRewardTests
{
    /// <summary>A reward that gives candidate i the value values[i].</summary>
    private static IReward Fixed(string name, params double[] values) =>
        new BatchCallbackReward((_, rewards) => values.CopyTo(rewards), name);

    private static readonly RewardInput[] Two = [Candidate("a"), Candidate("b")];

    [Fact]
    public void Weighted_sum_is_sum_of_weight_times_reward()
    {
        // [M22]: 0.7 * (1, -2) + 0.3 * (10, 4) - 0.5 * (2, 2) = (0.7 + 3 - 1, -1.4 + 1.2 - 1).
        var reward = new WeightedReward([new(0.7, Fixed("a", 1, -2)), new(0.3, Fixed("b", 10, 4)), new(-0.5, Fixed("c", 2, 2))]);
        double[] r = Score(reward, Two);
        Assert.Equal(2.7, r[0], 1e-14);
        Assert.Equal(-1.2, r[1], 1e-14);
        Assert.Equal("0.7*a+0.3*b+-0.5*c", reward.Description);
    }

    [Fact]
    public void Weight_one_is_left_out_and_nested_sums_are_flattened()
    {
        var inner = new WeightedReward([new(1.0, Fixed("a", 1, 1)), new(2.0, Fixed("b", 1, 2))]);
        Assert.Equal("a+2*b", inner.Description);
        var outer = new WeightedReward([new(3.0, inner), new(0.0, Fixed("c", 5, 5))]);
        Assert.Equal("3*a+6*b+0*c", outer.Description);
        Assert.Equal(3, outer.Terms.Count);
        Assert.Equal([9.0, 15.0], Score(outer, Two));
    }

    [Fact]
    public void Weighted_checks_weights_members_and_overflow()
    {
        Assert.Throws<ArgumentException>(() => new WeightedReward([]));
        Assert.Throws<ArgumentException>(() => new WeightedReward([new(double.NaN, Fixed("a", 1))]));
        Assert.Throws<ArgumentException>(() => new WeightedReward([new(1.0, null!)]));
        var huge = new WeightedReward([new(2.0, Fixed("a", 1e308, 0)), new(1.0, Fixed("b", 0, 0))]);
        AssertTilt(() => Score(huge, Two), "reward '2*a+b' gave Infinity for candidate 0");
        var badMember = new WeightedReward([new(1.0, Fixed("a", 1, 1)), new(1.0, Fixed("nan", 0, double.NaN))]);
        AssertTilt(() => Score(badMember, Two), "reward 'nan' gave NaN for candidate 1");
    }

    [Fact]
    public void Ensembles_match_hand_values()
    {
        // Candidate 0: members (1, 2, 6): mean 3, min 1, population std sqrt((4 + 1 + 9) / 3).
        // Candidate 1: members (-1, -1, -1): mean -1, min -1, std 0.
        IReward[] members = [Fixed("a", 1, -1), Fixed("b", 2, -1), Fixed("c", 6, -1)];
        Assert.Equal([3.0, -1.0], Score(RewardEnsemble.Mean(members), Two));
        Assert.Equal([1.0, -1.0], Score(RewardEnsemble.Min(members), Two));
        double[] r = Score(RewardEnsemble.MeanMinusStd(0.5, members), Two);
        Assert.Equal(3.0 - 0.5 * Math.Sqrt(14.0 / 3.0), r[0], 1e-14);
        Assert.Equal(-1.0, r[1], 1e-15);
        Assert.Equal([3.0, -1.0], Score(RewardEnsemble.MeanMinusStd(0.0, members), Two));
    }

    [Fact]
    public void Std_is_population_std_over_two_members()
    {
        // Members (0, 4): mean 2, population std 2 (sample std would be 2.83): 2 - 1.5 * 2 = -1.
        var reward = RewardEnsemble.MeanMinusStd(1.5, Fixed("a", 0), Fixed("b", 4));
        Assert.Equal([-1.0], Score(reward, Candidate("x")));
    }

    [Fact]
    public void Ensembles_describe_themselves_and_expose_their_parts()
    {
        var mean = RewardEnsemble.Mean(Fixed("a", 0), new LengthReward(5));
        Assert.Equal("mean(a;length:5)", mean.Description);
        Assert.Equal("min(a)", RewardEnsemble.Min(Fixed("a", 0)).Description);
        var meanStd = RewardEnsemble.MeanMinusStd(0.25, Fixed("a", 0), Fixed("b", 0));
        Assert.Equal("meanstd(0.25;a;b)", meanStd.Description);
        Assert.Equal(EnsembleMode.MeanMinusStd, meanStd.Mode);
        Assert.Equal(0.25, meanStd.Lambda);
        Assert.Equal(2, meanStd.Members.Count);
    }

    [Fact]
    public void Ensembles_check_members_and_lambda()
    {
        Assert.Throws<ArgumentException>(() => RewardEnsemble.Mean());
        Assert.Throws<ArgumentException>(() => RewardEnsemble.Mean(Fixed("a", 0), null!));
        Assert.Throws<ArgumentOutOfRangeException>(() => RewardEnsemble.MeanMinusStd(-0.1, Fixed("a", 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => RewardEnsemble.MeanMinusStd(double.PositiveInfinity, Fixed("a", 0)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RewardEnsemble(EnsembleMode.Min, [Fixed("a", 0)], lambda: 1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RewardEnsemble((EnsembleMode)7, [Fixed("a", 0)]));
        AssertTilt(() => Score(RewardEnsemble.Min(Fixed("a", 0, 0), Fixed("inf", 0, double.NegativeInfinity)), Two),
            "reward 'inf' gave -Infinity for candidate 1");
        AssertTilt(() => Score(RewardEnsemble.Mean(Fixed("a", 1e308), Fixed("b", 1e308)), Candidate("x")),
            "reward 'mean(a;b)' gave Infinity for candidate 0");
    }

    [Fact]
    public void Hidden_state_need_propagates_from_any_member()
    {
        var head = new CallbackReward(c => c.FinalHidden.Span[0], "head", needsHiddenState: true);
        Assert.False(RewardEnsemble.Mean(new LengthReward(3)).NeedsHiddenState);
        Assert.True(RewardEnsemble.Mean(new LengthReward(3), head).NeedsHiddenState);
        Assert.True(new WeightedReward([new(1.0, new LengthReward(3)), new(1.0, head)]).NeedsHiddenState);
    }

    [Fact]
    public void Composites_score_larger_batches_in_order()
    {
        // Wider than small pooled buffers; rewards[i] must still line up with candidates[i].
        RewardInput[] batch = [.. Enumerable.Range(0, 37).Select(i => Candidate(tokens: i))];
        var ensemble = RewardEnsemble.Mean(new LengthReward(10), new WeightedReward([new(2.0, new LengthReward(10))]));
        double[] r = Score(ensemble, batch);
        for (int i = 0; i < batch.Length; i++)
        {
            Assert.Equal(1.5 * -Math.Abs(i - 10) / 10.0, r[i], 1e-15);
        }
    }

    [Fact]
    public void Checked_scoring_rejects_a_span_of_the_wrong_length_and_allows_empty_batches()
    {
        var reward = new LengthReward(3);
        Assert.Throws<ArgumentException>(() => reward.ScoreChecked(Two, new double[3]));
        reward.ScoreChecked([], Span<double>.Empty);
        Assert.Equal(-1.0, reward.Score(Candidate(tokens: 0)));
    }
}
