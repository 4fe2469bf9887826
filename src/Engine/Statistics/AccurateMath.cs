namespace Tilt.Engine.Statistics;

/// <summary>
/// log(1+x), exp(x)-1 and log(1-exp(a)) to a few ulps over the whole double range.
/// </summary>
/// <remarks>
/// .NET's <c>double.LogP1</c> and <c>double.ExpM1</c> are computed as <c>Log(x + 1)</c> and <c>Exp(x) - 1</c>,
/// which lose every significant digit for |x| below 1e-16. The best-of-n formulas [M5], [M9] need
/// 1 - (1 - eps)^n for eps down to 1e-300, which is exactly that regime. The implementations below use
/// the classic correction tricks (Goldberg for log1p, Kahan for expm1) that cancel the rounding error of
/// forming 1 + x, so they inherit the accuracy of <see cref="Math.Log(double)"/> and <see cref="Math.Exp"/>.
/// </remarks>
public static class AccurateMath
{
    // Above this exp(x) overflows; expm1(x) is +infinity there too.
    private const double ExpOverflowThreshold = 709.782712893384;

    private const double Ln2 = 0.69314718055994531;

    /// <summary>log(1 + x), accurate also when |x| is far below the double epsilon.</summary>
    /// <returns>NaN for x &lt; -1 or NaN; -infinity at x = -1.</returns>
    public static double Log1p(double x)
    {
        if (double.IsNaN(x) || x < -1.0)
        {
            return double.NaN;
        }

        if (x == -1.0)
        {
            return double.NegativeInfinity;
        }

        if (double.IsPositiveInfinity(x))
        {
            return double.PositiveInfinity;
        }

        // Goldberg (1991), Theorem 4: u = fl(1 + x) is exactly 1 + x' for a nearby x'; log(u)/(u-1)
        // varies slowly, so scaling it by the true x removes the error made when rounding 1 + x.
        double u = 1.0 + x;
        if (u == 1.0)
        {
            return x;
        }

        return Math.Log(u) * (x / (u - 1.0));
    }

    /// <summary>exp(x) - 1, accurate also when |x| is far below the double epsilon.</summary>
    /// <returns>-1 at -infinity, +infinity above ~709.78, NaN for NaN.</returns>
    public static double Expm1(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        if (x > ExpOverflowThreshold)
        {
            return double.PositiveInfinity;
        }

        if (double.IsNegativeInfinity(x))
        {
            return -1.0;
        }

        // Kahan's trick: u = fl(exp(x)) equals exp(x') for a nearby x' = log(u); (u - 1) is then
        // exact-ish for x', and multiplying by x / x' moves the result back to the true argument.
        double u = Math.Exp(x);
        if (u == 1.0)
        {
            return x;
        }

        double um1 = u - 1.0;
        if (um1 == -1.0)
        {
            return -1.0;
        }

        return um1 * x / Math.Log(u);
    }

    /// <summary>log(1 - exp(a)) for a &lt;= 0, accurate at both ends (a near 0 and a very negative).</summary>
    /// <returns>-infinity at a = 0, 0 (or a tiny negative) for a far below -745, NaN for a &gt; 0 or NaN.</returns>
    public static double Log1mExp(double a)
    {
        if (double.IsNaN(a) || a > 0.0)
        {
            return double.NaN;
        }

        // Mächler (2012), "Accurately computing log(1 - exp(-|a|))": switch at -log 2 so each branch
        // only takes log1p/expm1 of an argument it is accurate for.
        return a > -Ln2 ? Math.Log(-Expm1(a)) : Log1p(-Math.Exp(a));
    }
}
