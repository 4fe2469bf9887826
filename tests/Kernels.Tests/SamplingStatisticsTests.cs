using Tilt.Kernels;

namespace Tilt.Kernels.Tests;

/// <summary>
/// Distribution tests. Seeds are fixed, so each test is deterministic; the thresholds are the chi-square quantiles at
/// one-sided p = 1e-4 (z = 3.72), i.e. with a fresh seed each would fail a correct sampler about once in 10,000 runs.
/// </summary>
public class SamplingStatisticsTests
{
    private const double Z = 3.72;

    public static TheoryData<float, int, float> Settings => new()
    {
        { 1f, 0, 1f }, { 0.5f, 5, 1f }, { 1f, 0, 0.8f }, { 2f, 8, 0.9f }, { 0.7f, 3, 1f },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void FrequenciesMatchTheExactFilteredDistribution(float t, int topK, float topP)
    {
        float[] row = [2.0f, 1.5f, 1.4f, 0.3f, -0.2f, float.NegativeInfinity, 0.9f, -1.0f, 1.45f, 0.0f, -3f, 1.1f];
        int vocab = row.Length;
        const int n = 20_000;
        var p = new SamplingParameters(t, topK, topP);
        var logits = new float[n * vocab];
        for (int i = 0; i < n; i++)
            row.CopyTo(logits, i * vocab);
        // Rows differ only in their logical row id: this also checks that separate rows are separate streams.
        var keys = Enumerable.Range(0, n).Select(i => new RngKey(2024, 7, 3, (uint)i)).ToArray();
        using var k = Backends.Create(Backends.Cpu);
        var got = SampleBaseTests.Run(k, logits, n, vocab, Enumerable.Repeat(p, n).ToArray(), keys);

        var (ids, probs) = Reference.Filter(row, p);
        var counts = new int[vocab];
        foreach (int tok in got.Tokens)
            counts[tok]++;
        for (int c = 0; c < vocab; c++)
            if (!ids.Contains(c))
                Assert.True(counts[c] == 0, $"token {c} is filtered out but was drawn {counts[c]} times");
        double chi2 = 0;
        for (int j = 0; j < ids.Length; j++)
        {
            double e = n * probs[j];
            chi2 += (counts[ids[j]] - e) * (counts[ids[j]] - e) / e;
        }
        if (ids.Length > 1)
            Assert.True(chi2 < TestData.ChiSquareQuantile(Math.Max(3, ids.Length - 1), Z), $"chi2 = {chi2} over {ids.Length} tokens");
        // The reported sampler log-prob is the exact log-probability of the drawn token.
        for (int i = 0; i < 50; i++)
            Assert.Equal(Math.Log(probs[Array.IndexOf(ids, got.Tokens[i])]), got.Sampler[i], 1e-5);
    }

    [Fact]
    public void StepsAndRowsAreIndependentStreams()
    {
        // Uniform over 16 tokens; two logical rows over 16384 steps. The pair (token of row 0, token of row 1) must be
        // uniform over 256 cells (chi-square, 255 df), and so must consecutive steps of one row.
        const int vocab = 16, steps = 16_384;
        var logits = new float[2 * vocab];
        var pairs = new int[vocab * vocab];
        var lagged = new int[vocab * vocab];
        using var k = Backends.Create(Backends.Cpu);
        var tokens = new int[2];
        var b = new float[2];
        var s = new float[2];
        var p = new SamplingParameters[2];
        Array.Fill(p, new SamplingParameters());
        int previous = -1;
        for (uint step = 0; step < steps; step++)
        {
            k.SampleBase(logits, 2, vocab, p, [new RngKey(5, 1, step, 0), new RngKey(5, 1, step, 1)], tokens, b, s);
            pairs[tokens[0] * vocab + tokens[1]]++;
            if (previous >= 0)
                lagged[previous * vocab + tokens[0]]++;
            previous = tokens[0];
        }
        double limit = TestData.ChiSquareQuantile(255, Z);
        Assert.True(ChiSquareUniform(pairs) < limit, $"rows: {ChiSquareUniform(pairs)}");
        Assert.True(ChiSquareUniform(lagged) < limit, $"steps: {ChiSquareUniform(lagged)}");
    }

    private static double ChiSquareUniform(int[] counts)
    {
        double e = counts.Sum() / (double)counts.Length;
        return counts.Sum(c => (c - e) * (c - e) / e);
    }
}
