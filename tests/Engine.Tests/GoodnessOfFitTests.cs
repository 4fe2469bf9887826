namespace Tilt.Engine.Tests;

public sealed class GoodnessOfFitTests
{
    [Theory]
    // (df, x, upper tail) from standard chi-square tables / closed forms.
    [InlineData(1, 3.841458820694124, 0.05)]
    [InlineData(2, 5.991464547107979, 0.05)]   // df 2: Q = exp(-x/2) exactly
    [InlineData(10, 18.307038053275146, 0.05)]
    [InlineData(10, 29.588298445074, 0.001)]
    [InlineData(100, 124.342112968, 0.05)]
    public void UpperTailMatchesTables(int df, double x, double tail)
    {
        Assert.Equal(tail, GoodnessOfFit.UpperRegularizedGamma(df / 2.0, x / 2.0), 6);
    }

    [Fact]
    public void LogGammaMatchesFactorials()
    {
        for (int n = 1; n < 30; n++)
        {
            double logFactorial = Enumerable.Range(1, n - 1).Sum(i => Math.Log(i));
            Assert.Equal(logFactorial, GoodnessOfFit.LogGamma(n), 10);
        }
    }

    [Fact]
    public void AWrongDistributionIsRejected()
    {
        // 10,000 draws of a fair 4-sided die tested against a loaded one must fail hard.
        var rng = new Random(7);
        var counts = new long[4];
        for (int i = 0; i < 10_000; i++) counts[rng.Next(4)]++;
        Assert.True(GoodnessOfFit.ChiSquare(counts, [0.25, 0.25, 0.25, 0.25]).PValue > 1e-3);
        Assert.True(GoodnessOfFit.ChiSquare(counts, [0.3, 0.2, 0.25, 0.25]).PValue < 1e-6);
    }
}
