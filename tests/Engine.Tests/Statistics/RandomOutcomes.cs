using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

/// <summary>Random discrete distributions for property tests: random sizes, ties, near-degenerate shapes.</summary>
internal static class RandomOutcomes
{
    /// <summary>Draws probabilities and rewards of a random size in [1, maxSize].</summary>
    public static (double[] Probabilities, double[] Rewards) Draw(Random rng, int maxSize)
    {
        int m = rng.Next(1, maxSize + 1);
        var weights = new double[m];
        int shape = rng.Next(6);
        for (int i = 0; i < m; i++)
        {
            double u = rng.NextDouble();
            weights[i] = shape switch
            {
                0 => u,                                  // plain
                1 => Math.Pow(u, 8),                     // heavily skewed, some tiny masses
                2 => Math.Exp(-690.0 * u),               // log-uniform down to 1e-300
                3 => 1.0,                                // uniform
                4 => i == 0 ? 1e9 : u,                   // one outcome nearly certain
                _ => u < 0.3 ? 0.0 : u,                  // exact zeros
            };
        }

        if (Sum(weights) == 0.0)
        {
            weights[rng.Next(m)] = 1.0;
        }

        double total = Sum(weights);
        var probabilities = new double[m];
        for (int i = 0; i < m; i++)
        {
            probabilities[i] = weights[i] / total;
        }

        var rewards = new double[m];
        int tieShape = rng.Next(3);
        int levels = rng.Next(1, m + 1);
        for (int i = 0; i < m; i++)
        {
            rewards[i] = tieShape switch
            {
                0 => rng.NextDouble(),      // distinct (almost surely)
                1 => rng.Next(levels),      // ties
                _ => rng.Next(2),           // at most two tie groups
            };
        }

        return (probabilities, rewards);
    }

    /// <summary>Index drawn from <paramref name="cdf"/> (inclusive prefix sums): the first i with cdf[i] &gt; u.</summary>
    /// <remarks>"First strictly greater" never lands on a zero-probability entry, whose cdf equals its left neighbour's.</remarks>
    public static int Sample(Random rng, double[] cdf)
    {
        double u = rng.NextDouble() * cdf[^1];
        int lo = 0, hi = cdf.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (cdf[mid] > u)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return lo;
    }

    public static double[] Cdf(IReadOnlyList<double> probabilities)
    {
        var cdf = new double[probabilities.Count];
        double s = 0.0;
        for (int i = 0; i < cdf.Length; i++)
        {
            s += probabilities[i];
            cdf[i] = s;
        }

        return cdf;
    }

    public static DiscreteOutcomes Outcomes((double[] Probabilities, double[] Rewards) draw) => new(draw.Probabilities, draw.Rewards);

    private static double Sum(double[] values)
    {
        double s = 0.0;
        foreach (double v in values)
        {
            s += v;
        }

        return s;
    }
}
