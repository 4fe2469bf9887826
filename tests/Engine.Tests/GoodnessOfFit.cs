namespace Tilt.Engine.Tests;

/// <summary>
/// Pearson chi-square goodness of fit for sampled frequencies against an exact distribution, with the
/// p-value from the regularized upper incomplete gamma function Q(k/2, x/2) (series for x &lt; a+1,
/// Lentz continued fraction otherwise; both converge to double precision).
/// </summary>
internal static class GoodnessOfFit
{
    /// <summary>
    /// Chi-square statistic and p-value of observed counts against expected probabilities. Cells whose
    /// expected count is under 5 are pooled into one cell, as the chi-square approximation needs.
    /// </summary>
    public static (double Statistic, int DegreesOfFreedom, double PValue) ChiSquare(IReadOnlyList<long> observed, IReadOnlyList<double> probabilities)
    {
        long n = observed.Sum();
        double statistic = 0, pooledExpected = 0;
        long pooledObserved = 0;
        int cells = 0;
        for (int i = 0; i < observed.Count; i++)
        {
            double expected = n * probabilities[i];
            if (expected < 5)
            {
                pooledExpected += expected;
                pooledObserved += observed[i];
                continue;
            }
            statistic += Square(observed[i] - expected) / expected;
            cells++;
        }
        if (pooledExpected > 0)
        {
            statistic += Square(pooledObserved - pooledExpected) / pooledExpected;
            cells++;
        }
        int df = Math.Max(1, cells - 1);
        return (statistic, df, UpperRegularizedGamma(df / 2.0, statistic / 2.0));
    }

    private static double Square(double x) => x * x;

    /// <summary>Q(a, x) = Gamma(a, x) / Gamma(a).</summary>
    public static double UpperRegularizedGamma(double a, double x)
    {
        if (x <= 0) return 1;
        double logPrefix = a * Math.Log(x) - x - LogGamma(a);
        if (x < a + 1)
        {
            double term = 1 / a, sum = term;
            for (int k = 1; k < 10_000 && Math.Abs(term) > Math.Abs(sum) * 1e-16; k++)
            {
                term *= x / (a + k);
                sum += term;
            }
            return Math.Max(0, 1 - sum * Math.Exp(logPrefix));
        }
        const double tiny = 1e-300;
        double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
        for (int i = 1; i < 10_000; i++)
        {
            double an = -i * (i - a);
            b += 2;
            d = an * d + b;
            if (Math.Abs(d) < tiny) d = tiny;
            c = b + an / c;
            if (Math.Abs(c) < tiny) c = tiny;
            d = 1 / d;
            double delta = d * c;
            h *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return Math.Exp(logPrefix) * h;
    }

    /// <summary>log Gamma(x) for x &gt; 0 (Lanczos, g = 7, n = 9; relative error ~1e-15).</summary>
    public static double LogGamma(double x)
    {
        ReadOnlySpan<double> c =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7,
        ];
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        x -= 1;
        double sum = c[0];
        double t = x + 7.5;
        for (int i = 1; i < 9; i++) sum += c[i] / (x + i);
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }
}
