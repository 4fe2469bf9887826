using Tilt.Engine.Rewards;
using static Tilt.Engine.Tests.Rewards.RewardTestData;

namespace Tilt.Engine.Tests.Rewards;

public sealed class LengthRewardTests
{
    [Theory]
    // r = -|n - target| / target with n = tokens without the stop token.
    [InlineData(40, 40, false, 0.0)]
    [InlineData(40, 41, true, 0.0)]            // 41 tokens, the last one the stop token: n = 40
    [InlineData(40, 30, false, -0.25)]         // -10/40
    [InlineData(40, 31, true, -0.25)]
    [InlineData(40, 50, false, -0.25)]         // symmetric: -10/40
    [InlineData(40, 0, false, -1.0)]
    [InlineData(40, 100, false, -1.5)]         // -60/40: keeps falling past 2 * target
    [InlineData(1, 1, true, -1.0)]             // only the stop token: n = 0
    [InlineData(3, 4, false, -1.0 / 3.0)]
    [InlineData(3, 0, true, -1.0)]             // a finished candidate without tokens reads as empty, not n = -1
    public void Formula_matches_hand_values(int target, int tokens, bool finished, double expected)
    {
        double[] r = Score(new LengthReward(target), Candidate("text ignored", tokens, finished));
        Assert.Equal(expected, r[0], 1e-15);
    }

    [Fact]
    public void Scores_a_batch_in_order_and_describes_itself()
    {
        var reward = new LengthReward(4);
        double[] r = Score(reward, Candidate(tokens: 4), Candidate(tokens: 2), Candidate(tokens: 5, finished: true));
        Assert.Equal([0.0, -0.5, 0.0], r);
        Assert.Equal("length:4", reward.Description);
        Assert.False(reward.NeedsHiddenState);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Target_below_one_is_rejected(int target)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LengthReward(target));
    }
}
