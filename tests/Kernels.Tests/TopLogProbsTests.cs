namespace Tilt.Kernels.Tests;

/// <summary>The top-N pass against a float64 sort of the whole row, on every backend.</summary>
public class TopLogProbsTests
{
    /// <summary>log-softmax in float64 over the full row, sorted by (log p descending, id ascending), -inf left out.</summary>
    private static (int Id, double LogProb)[] Reference(ReadOnlySpan<float> row, int n)
    {
        double max = double.NegativeInfinity;
        foreach (float x in row) max = Math.Max(max, x);
        double sum = 0;
        foreach (float x in row) sum += Math.Exp(x - max);
        double logZ = max + Math.Log(sum);
        var all = new List<(int, double)>();
        for (int t = 0; t < row.Length; t++)
            if (row[t] != float.NegativeInfinity) all.Add((t, row[t] - logZ));
        return all.OrderByDescending(e => e.Item2).ThenBy(e => e.Item1).Take(n).ToArray();
    }

    [Theory]
    [MemberData(nameof(Backends.All), MemberType = typeof(Backends))]
    public void Every_tail_length_matches_a_float64_sort_of_the_row(string backend)
    {
        using var kernels = Backends.Create(backend);
        var random = new Random(23);
        for (int vocab = 1; vocab <= 257; vocab++)
        {
            const int matrixRows = 3;
            var logits = new float[matrixRows * vocab];
            for (int i = 0; i < logits.Length; i++)
            {
                // Ties (integers), masked tokens and a wide range.
                logits[i] = random.Next(4) switch
                {
                    0 => random.Next(-3, 3),
                    1 when vocab > 1 => float.NegativeInfinity,
                    _ => (float)(random.NextDouble() * 40 - 20),
                };
            }
            logits[vocab - 1] = 5; // every row has a possible token
            logits[2 * vocab] = 5;
            logits[3 * vocab - 1] = 5;
            int n = 1 + vocab % TopLogProbs.MaxN;
            int[] rows = [2, 0];
            var ids = new int[rows.Length * n];
            var lps = new double[rows.Length * n];
            int[] given = [vocab - 1, vocab > 1 ? 0 : -1];
            var givenLps = new double[rows.Length];
            kernels.TopLogProbs(logits, vocab, rows, n, ids, lps, given, givenLps);
            for (int r = 0; r < rows.Length; r++)
            {
                // The given token's log p (teacher forcing), listed or not, -inf for a masked one.
                var full = Reference(logits.AsSpan(rows[r] * vocab, vocab), vocab).ToDictionary(e => e.Id, e => e.LogProb);
                if (given[r] < 0) Assert.True(double.IsNaN(givenLps[r]));
                else Assert.Equal(full.GetValueOrDefault(given[r], double.NegativeInfinity), givenLps[r], 1e-12);
                var want = Reference(logits.AsSpan(rows[r] * vocab, vocab), n);
                for (int i = 0; i < n; i++)
                {
                    if (i >= want.Length)
                    {
                        Assert.Equal(-1, ids[r * n + i]);
                        Assert.Equal(double.NegativeInfinity, lps[r * n + i]);
                        continue;
                    }
                    Assert.True(want[i].Id == ids[r * n + i], $"vocab {vocab} row {rows[r]} rank {i}: id {ids[r * n + i]}, reference {want[i].Id}");
                    // The same float64 arithmetic up to the order of the exp sum: 1e-12.
                    Assert.Equal(want[i].LogProb, lps[r * n + i], 1e-12);
                }
            }
        }
    }

    [Fact]
    public void Bad_arguments_name_what_is_wrong()
    {
        var logits = new float[8];
        Assert.Throws<ArgumentOutOfRangeException>(() => TopLogProbs.Compute(logits, 4, [0], 21, new int[21], new double[21]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TopLogProbs.Compute(logits, 4, [2], 1, new int[1], new double[1]));
        Assert.Throws<ArgumentException>(() => TopLogProbs.Compute(logits, 4, [0, 1], 2, new int[3], new double[4]));
    }
}
