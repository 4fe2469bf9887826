using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

/// <summary>
/// The calibration's statistics against hand-computed cases: Spearman with ties (mid-ranks), the single decision's
/// survivors and whether they keep best-of-n's winner (the rule of RejectionRun.Reject), the auto decision length, and the
/// intervals (Wilson, Student).
/// </summary>
public sealed class RejectionCalibrationTests
{
    [Fact]
    public void SpearmanUsesMidRanksForTies()
    {
        // x ranks [1, 2.5, 2.5, 4], y ranks [1, 3, 2, 4]: sum dx dy = 4.5, sum dx^2 = 4.5, sum dy^2 = 5, rho = 4.5 / sqrt(22.5).
        Assert.Equal([1, 2.5, 2.5, 4], RejectionCalibration.MidRanks([1, 2, 2, 3]));
        Assert.Equal(Math.Sqrt(0.9), RejectionCalibration.Spearman([1, 2, 2, 3], [1, 3, 2, 4]), 12);
        Assert.Equal(1.0, RejectionCalibration.Spearman([1, 5, 7, 100], [-3, 0, 2, 2.5]), 12);
        Assert.Equal(-1.0, RejectionCalibration.Spearman([1, 2, 3], [3, 2, 1]), 12);
        Assert.True(double.IsNaN(RejectionCalibration.Spearman([4, 4, 4], [1, 2, 3])), "a constant side has no ranking");
    }

    [Fact]
    public void OneDecisionStopsTheLowestUnfinishedAndBreaksTiesByTheHigherIndex()
    {
        Assert.Equal([false, true, false, true], RejectionCalibration.Survivors([0.1, 0.5, 0.3, 0.9], [false, false, false, false], 0.5));
        Assert.Equal([true, true, false, false], RejectionCalibration.Survivors([0.2, 0.2, 0.2, 0.2], [false, false, false, false], 0.5));
        // A finished candidate is never stopped and is not counted: floor(0.5 x 3) = 1 of the other three goes.
        Assert.Equal([true, true, false, true], RejectionCalibration.Survivors([-9, 0.5, 0.3, 0.9], [true, false, false, false], 0.5));
    }

    [Fact]
    public void TheWinnerIsKeptWhenASurvivorHasTheBestFinalReward()
    {
        bool[] open = [false, false, false, false];
        Assert.False(RejectionCalibration.KeepsWinner([0.1, 0.5, 0.3, 0.9], open, [5, 1, 2, 3], 0.5));
        Assert.True(RejectionCalibration.KeepsWinner([0.1, 0.5, 0.3, 0.9], open, [1, 2, 1, 0], 0.5));
        // Tied best rewards: keeping either keeps the winner's reward.
        Assert.True(RejectionCalibration.KeepsWinner([0.1, 0.5, 0.3, 0.9], open, [3, 0, 0, 3], 0.5));
    }

    [Fact]
    public void AutoTakesTheSmallestLengthReachingTheTarget()
    {
        (int, double)[] kept = [(8, 0.97), (1, 0.5), (4, 0.92), (2, 0.85)];
        Assert.Equal(4, RejectionCalibration.ChooseDecisionLength(kept, 0.9));
        Assert.Null(RejectionCalibration.ChooseDecisionLength(kept, 0.99));
    }

    [Fact]
    public void IntervalsMatchHandComputedValues()
    {
        var wilson = IntervalEstimate.OfProportion(9, 10);
        Assert.Equal(0.5958500, wilson.Lower, 6);
        Assert.Equal(0.9821238, wilson.Upper, 6);
        var mean = IntervalEstimate.OfMean([1.0, 2, 3, 4, 5]); // 3 +- t(0.975, 4) sqrt(2.5 / 5), t = 2.776
        Assert.Equal(1.0370716, mean.Lower, 6);
        Assert.Equal(4.9629284, mean.Upper, 6);
    }
}
