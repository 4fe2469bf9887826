using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

/// <summary>
/// Simulated best-of-n [M4] (draw n from p, keep the highest reward, break ties uniformly among the tied
/// draws) against the exact pmf [M5] and win-rate [M10].
/// </summary>
/// <remarks>
/// Seeds are fixed, so each test is deterministic; the stated false-failure rates are what a fresh seed
/// would risk and say how strict the thresholds are.
/// </remarks>
public sealed class BestOfNSimulationTests
{
    private const int Repetitions = 100_000;

    public static TheoryData<double[], double[], int> Cases => new()
    {
        // Ties at reward 3 (outcomes 1, 2), a zero-probability outcome, distinct others.
        { [0.1, 0.2, 0.15, 0.25, 0.05, 0.25, 0.0], [1, 3, 3, 2, 5, 0, 4], 3 },
        { [0.1, 0.2, 0.15, 0.25, 0.05, 0.25, 0.0], [1, 3, 3, 2, 5, 0, 4], 7 },
        // Every outcome tied: best-of-n is p itself.
        { [0.3, 0.3, 0.4], [1, 1, 1], 5 },
        { [0.5, 0.5], [0, 1], 2 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Simulated_best_of_n_matches_the_exact_pmf(double[] p, double[] r, int n)
    {
        var bon = new BestOfN(new DiscreteOutcomes(p, r), n);
        var rng = new Random(1234 + n);
        var counts = new long[p.Length];
        double[] cdf = RandomOutcomes.Cdf(p);
        var draws = new int[n];
        for (int rep = 0; rep < Repetitions; rep++)
        {
            counts[Simulate(rng, cdf, r, draws)]++;
        }

        // Pearson chi-square over outcomes with positive expected count; df = cells - 1.
        double statistic = 0.0;
        int cells = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double expected = Repetitions * bon.Probabilities[i];
            if (expected == 0.0)
            {
                Assert.Equal(0, counts[i]);
                continue;
            }

            statistic += (counts[i] - expected) * (counts[i] - expected) / expected;
            cells++;
        }

        // The 0.999 quantile: a correct pmf fails with probability 1e-3 per case.
        double critical = ChiSquare.Quantile(0.999, cells - 1);
        Assert.True(statistic <= critical, $"chi-square {statistic:F2} > {critical:F2} (df {cells - 1})");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Monte_carlo_win_rate_matches_the_closed_form(double[] p, double[] r, int n)
    {
        var bon = new BestOfN(new DiscreteOutcomes(p, r), n);
        var rng = new Random(99 + n);
        double[] cdf = RandomOutcomes.Cdf(p);
        var draws = new int[n];
        double sum = 0.0, sumSquares = 0.0;
        for (int rep = 0; rep < Repetitions; rep++)
        {
            int y = Simulate(rng, cdf, r, draws);
            int z = RandomOutcomes.Sample(rng, cdf);
            double score = r[y] > r[z] ? 1.0 : r[y] == r[z] ? 0.5 : 0.0;
            sum += score;
            sumSquares += score * score;
        }

        double mean = sum / Repetitions;
        double se = Math.Sqrt((sumSquares / Repetitions - mean * mean) / (Repetitions - 1));
        // 4.5 standard errors: two-sided false-failure rate 7e-6.
        Assert.InRange(bon.WinRate, mean - 4.5 * se, mean + 4.5 * se);
    }

    /// <summary>One best-of-n draw: n i.i.d. indices, the highest reward wins, ties uniform among the tied draws.</summary>
    private static int Simulate(Random rng, double[] cdf, double[] r, int[] draws)
    {
        double best = double.NegativeInfinity;
        int tiedDraws = 0;
        for (int k = 0; k < draws.Length; k++)
        {
            int y = RandomOutcomes.Sample(rng, cdf);
            if (r[y] > best)
            {
                best = r[y];
                tiedDraws = 0;
            }

            if (r[y] == best)
            {
                draws[tiedDraws++] = y;
            }
        }

        return draws[rng.Next(tiedDraws)];
    }
}
