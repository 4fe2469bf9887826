using Tilt.Engine.Rewards;
using static Tilt.Engine.Tests.Rewards.RewardTestData;

namespace Tilt.Engine.Tests.Rewards;

public sealed class CallbackRewardTests
{
    [Fact]
    public void Calls_the_host_once_per_candidate_in_order()
    {
        var seen = new List<string>();
        var reward = new CallbackReward(c => { seen.Add(c.Text); return c.Text.Length; }, "host:length", needsHiddenState: false);
        Assert.Equal([1.0, 3.0, 0.0], Score(reward, "a", "abc", ""));
        Assert.Equal(["a", "abc", ""], seen);
        Assert.Equal("host:length", reward.Description);
    }

    [Theory]
    [InlineData(double.NaN, "NaN")]
    [InlineData(double.PositiveInfinity, "Infinity")]
    [InlineData(double.NegativeInfinity, "-Infinity")]
    public void Non_finite_results_name_the_candidate(double bad, string shown)
    {
        var reward = new CallbackReward(c => c.Text == "bad" ? bad : 1.0, "host");
        AssertTilt(() => Score(reward, "ok", "ok", "bad"), "reward 'host' gave " + shown, "candidate 2");
    }

    [Fact]
    public void Exceptions_are_wrapped_with_the_candidate_index()
    {
        var boom = new InvalidOperationException("boom");
        var reward = new CallbackReward(c => c.Text == "x" ? throw boom : 0.0, "host");
        var e = Assert.ThrowsAny<TiltException>(() => Score(reward, "a", "x"));
        Assert.Equal("reward 'host' failed on candidate 1: boom", e.Message);
        Assert.Same(boom, e.InnerException);
    }

    [Fact]
    public void Cancellation_passes_through()
    {
        var reward = new CallbackReward(_ => throw new OperationCanceledException(), "host");
        Assert.Throws<OperationCanceledException>(() => Score(reward, "a"));
        var batch = new BatchCallbackReward((_, _) => throw new OperationCanceledException(), "host");
        Assert.Throws<OperationCanceledException>(() => Score(batch, "a"));
    }

    [Fact]
    public void Batch_variant_is_called_once_per_batch()
    {
        int calls = 0;
        var reward = new BatchCallbackReward((candidates, rewards) =>
        {
            calls++;
            for (int i = 0; i < candidates.Count; i++)
            {
                rewards[i] = 10 * i + candidates[i].Tokens.Count;
            }
        }, "host:batch");
        Assert.Equal([2.0, 10.0], Score(reward, Candidate(tokens: 2), Candidate(tokens: 0)));
        Assert.Equal(1, calls);
    }

    [Fact]
    public void Batch_slots_left_unwritten_or_non_finite_name_the_candidate()
    {
        var skips = new BatchCallbackReward((_, rewards) => { rewards[0] = 1; rewards[2] = 3; }, "host:batch");
        AssertTilt(() => Score(skips, "a", "b", "c"), "reward 'host:batch' gave NaN for candidate 1");
        var infinite = new BatchCallbackReward((_, rewards) => rewards.Fill(double.PositiveInfinity), "host:batch");
        AssertTilt(() => Score(infinite, "a"), "gave Infinity for candidate 0");
    }

    [Fact]
    public void Batch_exceptions_are_wrapped_naming_the_batch()
    {
        var reward = new BatchCallbackReward((_, _) => throw new InvalidOperationException("boom"), "host:batch");
        AssertTilt(() => Score(reward, "a", "b"), "reward 'host:batch' failed on its batch of 2 candidates (indices 0..1): boom");
    }

    [Fact]
    public void Hidden_state_need_is_declared_and_enforced_by_checked_scoring()
    {
        var reward = new CallbackReward(c => c.FinalHidden.Span[0], "host:head", needsHiddenState: true);
        Assert.True(reward.NeedsHiddenState);
        Assert.Equal([0.5], Score(reward, Candidate(hidden: [0.5f, 1f])));
        var e = Assert.Throws<ArgumentException>(() => Score(reward, Candidate(hidden: [0.5f]), Candidate()));
        Assert.Contains("reward 'host:head' needs the final hidden state, and candidate 1 has none", e.Message);
    }

    [Fact]
    public void Construction_checks_its_arguments()
    {
        Assert.Throws<ArgumentNullException>(() => new CallbackReward(null!, "x"));
        Assert.Throws<ArgumentException>(() => new CallbackReward(_ => 0, " "));
        Assert.Throws<ArgumentNullException>(() => new BatchCallbackReward(null!, "x"));
        Assert.Throws<ArgumentException>(() => new BatchCallbackReward((_, _) => { }, ""));
    }
}
