using Tilt.Engine.Rewards;
using static Tilt.Engine.Tests.Rewards.RewardTestData;

namespace Tilt.Engine.Tests.Rewards;

public sealed class RegexRewardTests
{
    [Theory]
    [InlineData(@"\bhappy\b", "happy, unhappy happy! happyish", 2.0)]
    [InlineData("aa", "aaaa", 2.0)]                    // non-overlapping: not 3
    [InlineData("aa", "aaaaa", 2.0)]
    [InlineData("Happy", "happy HAPPY Happy", 1.0)]    // case-sensitive by default
    [InlineData("(?i)happy", "happy HAPPY Happy", 3.0)]
    [InlineData(@"\d+", "1 22 333 x", 3.0)]
    [InlineData("a+b*", "aab ab b", 2.0)]              // '+' and '*' are regex operators here
    [InlineData("x", "", 0.0)]
    [InlineData("a*", "bb", 3.0)]                      // empty matches count: before b, before b, at the end
    public void Counts_non_overlapping_matches(string pattern, string text, double expected)
    {
        Assert.Equal([expected], Score(new RegexReward(pattern), text));
    }

    [Fact]
    public void Describes_itself_by_its_pattern()
    {
        var reward = new RegexReward(@"\bhappy\b");
        Assert.Equal(@"regex:\bhappy\b", reward.Description);
        Assert.Equal(@"\bhappy\b", reward.Pattern);
        Assert.Equal(RegexReward.DefaultMatchTimeout, reward.MatchTimeout);
        Assert.False(reward.NeedsHiddenState);
    }

    [Theory]
    [InlineData("(unclosed")]
    [InlineData("a{2,1}")]
    [InlineData("[z-a]")]
    [InlineData("*a")]
    public void Invalid_patterns_name_the_pattern_and_the_problem(string pattern)
    {
        string message = AssertTilt(() => new RegexReward(pattern), $"invalid regex '{pattern}': ");
        Assert.True(message.Length > $"invalid regex '{pattern}': ".Length + 5, message);
    }

    [Fact]
    public void Empty_pattern_is_rejected()
    {
        AssertTilt(() => new RegexReward(""), "invalid regex ''", "empty pattern");
    }

    [Fact]
    public void A_count_past_the_timeout_fails_naming_the_candidate()
    {
        // Catastrophic backtracking: (a+)+$ on a's ending in a mismatch is exponential.
        var reward = new RegexReward("(a+)+$", TimeSpan.FromMilliseconds(20));
        AssertTilt(() => Score(reward, "ok", new string('a', 40) + "!"), "reward 'regex:(a+)+$' timed out", "candidate 1");
    }
}
