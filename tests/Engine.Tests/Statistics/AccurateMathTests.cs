using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

public sealed class AccurateMathTests
{
    // References: mpmath at 80 digits for the exact double argument, rounded to 17 significant digits. The tolerance, 4e-16 relative
    // (about 2 ulps), is what the Goldberg/Kahan corrections promise on top of a faithfully rounded
    // Math.Log/Math.Exp; the naive Log(1 + x) is off by 100% at x = 1e-17.
    private const double Ulps2 = 4e-16;

    [Theory]
    [InlineData(1e-300, 1.0e-300)]
    [InlineData(-1e-300, -1.0e-300)]
    [InlineData(1e-20, 9.9999999999999995e-21)]
    [InlineData(-1e-20, -9.9999999999999995e-21)]
    [InlineData(1e-10, 9.9999999995000004e-11)]
    [InlineData(-1e-10, -1.00000000005e-10)]
    [InlineData(3e-8, 2.9999999550000006e-8)]
    [InlineData(-3e-8, -3.0000000450000006e-8)]
    [InlineData(1e-5, 9.9999500003333317e-6)]
    [InlineData(-1e-5, -1.0000050000333337e-5)]
    [InlineData(0.001, 9.9950033308353319e-4)]
    [InlineData(-0.001, -1.0005003335835335e-3)]
    [InlineData(0.0123, 1.2224969622568971e-2)]
    [InlineData(-0.0123, -1.2376271068055427e-2)]
    [InlineData(0.1, 9.5310179804324865e-2)]
    [InlineData(-0.1, -1.0536051565782631e-1)]
    [InlineData(0.5, 4.0546510810816438e-1)]
    [InlineData(-0.5, -6.9314718055994531e-1)]
    [InlineData(0.75, 5.5961578793542269e-1)]
    [InlineData(-0.75, -1.3862943611198906)]
    [InlineData(1, 6.9314718055994531e-1)]
    [InlineData(2, 1.0986122886681097)]
    [InlineData(-0.9, -2.3025850929940459)]
    [InlineData(-0.999999, -1.3815510557935518e+1)]
    [InlineData(10, 2.3978952727983705)]
    [InlineData(100, 4.6151205168412595)]
    [InlineData(1e10, 2.3025850930040457e+1)]
    [InlineData(1e300, 6.9077552789821371e+2)]
    public void Log1p_matches_high_precision_reference(double x, double expected)
    {
        AssertRelative(expected, AccurateMath.Log1p(x), Ulps2);
    }

    [Theory]
    [InlineData(1e-300, 1.0e-300)]
    [InlineData(-1e-300, -1.0e-300)]
    [InlineData(1e-20, 9.9999999999999995e-21)]
    [InlineData(-1e-20, -9.9999999999999995e-21)]
    [InlineData(1e-10, 1.00000000005e-10)]
    [InlineData(-1e-10, -9.9999999995000004e-11)]
    [InlineData(3e-8, 3.0000000450000002e-8)]
    [InlineData(-3e-8, -2.9999999550000002e-8)]
    [InlineData(1e-5, 1.0000050000166668e-5)]
    [InlineData(-1e-5, -9.9999500001666671e-6)]
    [InlineData(0.001, 1.0005001667083417e-3)]
    [InlineData(-0.001, -9.9950016662500835e-4)]
    [InlineData(0.0123, 1.2375956100545244e-2)]
    [InlineData(-0.0123, -1.222466419314695e-2)]
    [InlineData(0.1, 1.0517091807564763e-1)]
    [InlineData(-0.1, -9.5162581964040432e-2)]
    [InlineData(0.5, 6.4872127070012815e-1)]
    [InlineData(-0.5, -3.9346934028736658e-1)]
    [InlineData(0.6931, 9.9990564110607971e-1)]
    [InlineData(-0.6931, -4.9997640916351731e-1)]
    [InlineData(1, 1.7182818284590452)]
    [InlineData(-1, -6.3212055882855768e-1)]
    [InlineData(2, 6.3890560989306502)]
    [InlineData(-2, -8.6466471676338731e-1)]
    [InlineData(10, 2.2025465794806717e+4)]
    [InlineData(-10, -9.9995460007023752e-1)]
    [InlineData(-40, -1.0)]
    [InlineData(-700, -1.0)]
    [InlineData(50, 5.1847055285870725e+21)]
    [InlineData(700, 1.0142320547350045e+304)]
    public void Expm1_matches_high_precision_reference(double x, double expected)
    {
        AssertRelative(expected, AccurateMath.Expm1(x), Ulps2);
    }

    [Fact]
    public void Small_arguments_match_the_float64_taylor_series()
    {
        // Below |x| = 1e-3 the series to x^6 is exact to double precision (next term < 1e-21 relative),
        // so it is an independent float64 reference over a dense, seeded sweep of magnitudes.
        var rng = new Random(20240601);
        for (int i = 0; i < 20000; i++)
        {
            double x = Math.Exp(-rng.NextDouble() * 700.0) * 1e-3 * (rng.Next(2) == 0 ? 1 : -1);
            double log1pSeries = x * (1 - x * (1.0 / 2 - x * (1.0 / 3 - x * (1.0 / 4 - x * (1.0 / 5 - x / 6)))));
            double expm1Series = x * (1 + x * (1.0 / 2 + x * (1.0 / 6 + x * (1.0 / 24 + x * (1.0 / 120 + x / 720)))));
            AssertRelative(log1pSeries, AccurateMath.Log1p(x), Ulps2);
            AssertRelative(expm1Series, AccurateMath.Expm1(x), Ulps2);
        }
    }

    [Fact]
    public void Log1p_and_expm1_invert_each_other()
    {
        var rng = new Random(7);
        for (int i = 0; i < 20000; i++)
        {
            double x = (rng.NextDouble() * 2 - 1) * Math.Pow(10, -rng.Next(0, 300));
            // Round trip through two functions with ~1 ulp each, amplified by at most the condition number ~1 here.
            AssertRelative(x, AccurateMath.Expm1(AccurateMath.Log1p(x)), 1e-15);
        }
    }

    [Fact]
    public void Special_values_are_the_mathematical_limits()
    {
        Assert.Equal(double.NegativeInfinity, AccurateMath.Log1p(-1.0));
        Assert.True(double.IsNaN(AccurateMath.Log1p(-1.5)));
        Assert.True(double.IsNaN(AccurateMath.Log1p(double.NaN)));
        Assert.Equal(double.PositiveInfinity, AccurateMath.Log1p(double.PositiveInfinity));
        Assert.Equal(0.0, AccurateMath.Log1p(0.0));

        Assert.Equal(-1.0, AccurateMath.Expm1(double.NegativeInfinity));
        Assert.Equal(double.PositiveInfinity, AccurateMath.Expm1(710.0));
        Assert.Equal(double.PositiveInfinity, AccurateMath.Expm1(double.PositiveInfinity));
        Assert.True(double.IsNaN(AccurateMath.Expm1(double.NaN)));
        Assert.Equal(0.0, AccurateMath.Expm1(0.0));
    }

    [Fact]
    public void Log1mExp_is_accurate_at_both_ends()
    {
        // a near 0: log(1 - e^a) = log(-a) + a/2 + ...; a very negative: -e^a.
        AssertRelative(Math.Log(1e-20), AccurateMath.Log1mExp(-1e-20), Ulps2);
        AssertRelative(-Math.Exp(-50.0), AccurateMath.Log1mExp(-50.0), Ulps2);
        AssertRelative(-Math.Log(2.0), AccurateMath.Log1mExp(-Math.Log(2.0)), Ulps2);
        Assert.Equal(double.NegativeInfinity, AccurateMath.Log1mExp(0.0));
        Assert.Equal(0.0, AccurateMath.Log1mExp(double.NegativeInfinity));
        Assert.Equal(0.0, AccurateMath.Log1mExp(-5000.0));
        Assert.True(double.IsNaN(AccurateMath.Log1mExp(0.1)));
    }

    private static void AssertRelative(double expected, double actual, double tolerance)
    {
        double error = expected == 0.0 ? Math.Abs(actual) : Math.Abs(actual - expected) / Math.Abs(expected);
        Assert.True(error <= tolerance, $"expected {expected:R}, got {actual:R} (relative error {error:E3} > {tolerance:E1})");
    }
}
