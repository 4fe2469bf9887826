using Tilt.Engine.Evaluation;
using Tilt.Engine.Statistics;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Evaluation;

public sealed class PairwiseWinRateTests
{
    private static EvaluatedPoint Point(string id, params double[][] rewards) => new()
    {
        Id = id, Series = "s", Method = EvaluationMethod.BestOfN, Prompts = rewards.Length, Outputs = rewards.Sum(r => r.Length),
        WinRate = 0.5, WinRateLower = 0, WinRateUpper = 1, Kl = 0, KlStandardError = 0, KlMethod = "", MeanReward = 0, BaseMeanReward = 0,
        TokensEvaluatedPerOutputToken = 1, LatencyMsPerOutput = 0, FirstTextMs = 0, Seconds = 0, PromptRewards = new RewardsByPrompt(rewards),
    };

    [Fact]
    public void OnePromptIsTheMannWhitneyEstimateWithItsDeLongInterval()
    {
        double[] a = [0.1, 0.5, 0.9, 1.3, 0.2, 0.7], b = [0.0, 0.4, 0.3, 0.6, 0.2];
        var w = PairwiseWinRates.Of(Point("a", a), Point("b", b));
        var expected = WinRate.Estimate(a, b);
        Assert.Equal(expected.Value, w.WinRate, 12);
        Assert.Equal(expected.Lower, w.Lower, 12);
        Assert.Equal(expected.Upper, w.Upper, 12);
    }

    [Fact]
    public void PromptsAreAveragedAndTheVarianceCombined()
    {
        double[][] a = [[1, 2, 3, 4], [0, 0, 1, 1]], b = [[0, 2.5, 1, 5], [1, 0, 0.5, 2]];
        var w = PairwiseWinRates.Of(Point("a", a), Point("b", b));
        var e0 = WinRate.Estimate(a[0], b[0]);
        var e1 = WinRate.Estimate(a[1], b[1]);
        Assert.Equal((e0.Value + e1.Value) / 2, w.WinRate, 12);
        double half = WinRate.Z95 * Math.Sqrt(e0.StandardError * e0.StandardError + e1.StandardError * e1.StandardError) / 2;
        Assert.Equal(Math.Max(0, w.WinRate - half), w.Lower, 12);
        Assert.Equal(Math.Min(1, w.WinRate + half), w.Upper, 12);
        var reverse = PairwiseWinRates.Of(Point("b", b), Point("a", a));
        Assert.Equal(1.0, w.WinRate + reverse.WinRate, 12);
    }

    [Fact]
    public void SeparatedAndIdenticalRewardsGiveOneAndOneHalf()
    {
        var high = Point("high", [5, 6, 7]);
        var low = Point("low", [1, 2, 3]);
        var w = PairwiseWinRates.Of(high, low);
        Assert.Equal(1.0, w.WinRate);
        Assert.True(w.Lower < 1.0); // the Wilson fallback still gives an interval for three samples a side
        Assert.Equal(0.5, PairwiseWinRates.Of(high, Point("same", [5, 6, 7])).WinRate, 12);
    }

    [Fact]
    public void PointsWithoutRewardsOrOtherPromptsAreLeftOut()
    {
        var a = Point("a", [1, 2]);
        var b = Point("b", [0, 3]);
        var other = Point("other", [1], [2]);
        var old = Point("old", [1]) with { PromptRewards = null };
        var pairs = PairwiseWinRates.Compute([a, b, other, old]);
        Assert.Equal([("a", "b"), ("b", "a")], pairs.Select(p => (p.A, p.B)));
        Assert.Throws<ArgumentException>(() => PairwiseWinRates.Of(a, other));
        Assert.Throws<ArgumentException>(() => PairwiseWinRates.Of(a, old));
    }
}
