using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

public sealed class KlBudgetTests
{
    [Theory]
    [InlineData(-0.3, KlBudgetBand.Fine)]          // a noisy estimate can be slightly negative
    [InlineData(0.0, KlBudgetBand.Fine)]
    [InlineData(7.999, KlBudgetBand.Fine)]
    [InlineData(8.0, KlBudgetBand.Caution)]
    [InlineData(15.0, KlBudgetBand.Caution)]
    [InlineData(15.001, KlBudgetBand.InspectForRewardHacking)]
    [InlineData(100.0, KlBudgetBand.InspectForRewardHacking)]
    [InlineData(100.001, KlBudgetBand.Useless)]
    [InlineData(double.PositiveInfinity, KlBudgetBand.Useless)]
    public void Bands_follow_M26(double kl, KlBudgetBand expected)
    {
        Assert.Equal(expected, KlBudget.Classify(kl));
    }

    [Fact]
    public void Every_band_has_its_own_description()
    {
        var descriptions = Enum.GetValues<KlBudgetBand>().Select(KlBudget.Describe).ToArray();
        Assert.Equal(descriptions.Length, descriptions.Distinct().Count());
        Assert.All(descriptions, d => Assert.False(string.IsNullOrWhiteSpace(d)));
        Assert.Contains("reward hacking", KlBudget.Describe(KlBudgetBand.InspectForRewardHacking), StringComparison.Ordinal);
        Assert.Equal(KlBudget.Describe(KlBudgetBand.Useless), KlBudget.Describe(250.0));
    }

    [Fact]
    public void Nan_has_no_band()
    {
        BestOfNTests.AssertArgument(() => KlBudget.Classify(double.NaN), "kl", "NaN");
        BestOfNTests.AssertArgument(() => KlBudget.Describe((KlBudgetBand)42), "band", "42");
    }
}
