using Tilt.Kernels;
using Tilt.Kernels.Cpu;

namespace Tilt.Kernels.Tests;

public class SampleBaseTests
{
    private static readonly SamplingParameters[] Mix =
    [
        new(1f), new(0f), new(0.7f), new(1.6f), new(1f, TopK: 1), new(1f, TopK: 5), new(0.8f, TopK: 40),
        new(1f, TopP: 0.9f), new(0.6f, TopP: 0.5f), new(1.3f, TopK: 50, TopP: 0.95f), new(1f, TopK: 100_000),
        new(1f, TopP: 0.999f), new(0.05f), new(1f, TopP: 0.01f),
    ];

    private static SamplingParameters[] Def(int n) => Enumerable.Repeat(new SamplingParameters(), n).ToArray();

    internal static (int[] Tokens, float[] Base, float[] Sampler) Run(IStepKernels k, float[] logits, int rows, int vocab,
        SamplingParameters[] p, RngKey[] keys)
    {
        var tokens = new int[rows];
        var b = new float[rows];
        var s = new float[rows];
        Array.Fill(tokens, -7);
        Array.Fill(b, float.NaN);
        Array.Fill(s, float.NaN);
        k.SampleBase(logits, rows, vocab, p, keys, tokens, b, s);
        return (tokens, b, s);
    }

    internal static void AssertMatchesReference(float[] logits, int rows, int vocab, SamplingParameters[] p, RngKey[] keys,
        (int[] Tokens, float[] Base, float[] Sampler) got)
    {
        for (int r = 0; r < rows; r++)
        {
            var x = logits.AsSpan(r * vocab, vocab);
            var want = Reference.SampleBase(x, p[r], keys[r]);
            Assert.True(want.Token == got.Tokens[r], $"row {r} of [{rows},{vocab}] {p[r]}: token {got.Tokens[r]}, reference {want.Token}");
            // float32 sums of exp over up to 32k terms against float64: relative 1e-6 of the log-partition, which can be
            // as large as the logits (up to 1e4 here), plus 2e-5 absolute.
            double tol = 2e-5 + 2e-6 * Math.Abs(want.BaseLogProb);
            Assert.True(Math.Abs(got.Base[r] - want.BaseLogProb) <= tol, $"row {r}: base {got.Base[r]} vs {want.BaseLogProb}");
            tol = 2e-5 + 2e-6 * Math.Abs(want.TiltedLogProb);
            Assert.True(Math.Abs(got.Sampler[r] - want.TiltedLogProb) <= tol, $"row {r}: sampler {got.Sampler[r]} vs {want.TiltedLogProb}");
        }
    }

    internal static (SamplingParameters[] P, RngKey[] Keys) Rows(Random rng, int rows)
    {
        var p = new SamplingParameters[rows];
        var keys = new RngKey[rows];
        for (int r = 0; r < rows; r++)
        {
            p[r] = Mix[rng.Next(Mix.Length)];
            keys[r] = new RngKey((ulong)rng.NextInt64(), (uint)rng.Next(), (uint)rng.Next(1000), (uint)rng.Next(300));
        }
        return (p, keys);
    }

    public static TheoryData<int, int, bool, bool> Shapes => new()
    {
        { 1, 1, false, false }, { 3, 2, false, false }, { 5, 7, true, false }, { 4, 8, false, false }, { 6, 31, false, true },
        { 7, 32, false, false }, { 9, 33, true, false }, { 257, 33, false, false }, { 8, 63, false, true }, { 8, 65, false, false },
        { 16, 100, true, false }, { 5, 257, false, true }, { 20, 1000, false, false }, { 12, 4099, true, false },
        { 64, 4099, false, false }, { 3, 32003, false, true }, { 17, 32003, false, false },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void CpuMatchesFloat64ReferenceOnOddShapes(int rows, int vocab, bool ties, bool extreme)
    {
        var rng = new Random(rows * 7919 + vocab);
        var logits = TestData.Logits(rng, rows, vocab, ties: ties, extreme: extreme);
        var (p, keys) = Rows(rng, rows);
        using var k = Backends.Create(Backends.Cpu);
        AssertMatchesReference(logits, rows, vocab, p, keys, Run(k, logits, rows, vocab, p, keys));
    }

    [Fact]
    public void EveryRowCountFrom1To257()
    {
        var rng = new Random(5);
        using var k = Backends.Create(Backends.Cpu);
        for (int rows = 1; rows <= 257; rows += rows < 40 ? 1 : 17)
        {
            int vocab = 1 + rng.Next(300);
            var logits = TestData.Logits(rng, rows, vocab);
            var (p, keys) = Rows(rng, rows);
            AssertMatchesReference(logits, rows, vocab, p, keys, Run(k, logits, rows, vocab, p, keys));
        }
    }

    [Fact]
    public void EveryTailLengthUpTo257()
    {
        var rng = new Random(11);
        using var k = Backends.Create(Backends.Cpu);
        for (int vocab = 1; vocab <= 257; vocab++)
        {
            var logits = TestData.Logits(rng, 2, vocab, scale: 1f);
            var (p, keys) = Rows(rng, 2);
            AssertMatchesReference(logits, 2, vocab, p, keys, Run(k, logits, 2, vocab, p, keys));
        }
    }

    [Fact]
    public void WorkerCountDoesNotChangeResults()
    {
        var rng = new Random(13);
        const int rows = 40, vocab = 5003;
        var logits = TestData.Logits(rng, rows, vocab);
        var (p, keys) = Rows(rng, rows);
        using var one = new CpuStepKernels(workers: 1);
        using var four = new CpuStepKernels(workers: 4);
        var a = Run(one, logits, rows, vocab, p, keys);
        var b = Run(four, logits, rows, vocab, p, keys);
        Assert.Equal(a.Tokens, b.Tokens);
        Assert.Equal(a.Base, b.Base);
        Assert.Equal(a.Sampler, b.Sampler);
    }

    [Fact]
    public void BatchCompositionDoesNotChangeALogicalRowsToken()
    {
        var rng = new Random(17);
        const int rows = 24, vocab = 777;
        var logits = TestData.Logits(rng, rows, vocab);
        var (p, keys) = Rows(rng, rows);
        using var k = Backends.Create(Backends.Cpu);
        var full = Run(k, logits, rows, vocab, p, keys);
        // Reverse the batch and drop a third of it: every surviving logical row keeps its token.
        int[] order = Enumerable.Range(0, rows).Reverse().Where(r => r % 3 != 0).ToArray();
        var sub = new float[order.Length * vocab];
        for (int i = 0; i < order.Length; i++)
            logits.AsSpan(order[i] * vocab, vocab).CopyTo(sub.AsSpan(i * vocab));
        var part = Run(k, sub, order.Length, vocab, order.Select(r => p[r]).ToArray(), order.Select(r => keys[r]).ToArray());
        for (int i = 0; i < order.Length; i++)
            Assert.Equal(full.Tokens[order[i]], part.Tokens[i]);
    }

    [Fact]
    public void GreedyTakesTheLowestIdOnExactTies()
    {
        using var k = Backends.Create(Backends.Cpu);
        float[] logits = [1f, 3f, -0f, 3f, 0f, float.NegativeInfinity, 3f, 2f, 0f, 0f];
        var r = Run(k, logits, 1, 10, [SamplingParameters.Greedy], [default]);
        Assert.Equal(1, r.Tokens[0]);
        Assert.Equal(0f, r.Sampler[0]);
        Assert.Equal(3 - Reference.LogSumExp(logits.Where(v => !float.IsNegativeInfinity(v)).Select(v => (double)v)), r.Base[0], 5e-6);
        float[] zeros = [-0f, 0f, 0f];
        Assert.Equal(0, Run(k, zeros, 1, 3, [SamplingParameters.Greedy], [default]).Tokens[0]);
    }

    [Fact]
    public void MaskedTokensAreNeverSampled()
    {
        using var k = Backends.Create(Backends.Cpu);
        const int rows = 2000, vocab = 40;
        var logits = new float[rows * vocab];
        Array.Fill(logits, float.NegativeInfinity);
        for (int r = 0; r < rows; r++)
        {
            logits[r * vocab + 3] = 0f;
            logits[r * vocab + 37] = -1f;
        }
        var p = Enumerable.Repeat(new SamplingParameters(2f, TopK: 10), rows).ToArray();
        var keys = Enumerable.Range(0, rows).Select(i => new RngKey(1, 0, 0, (uint)i)).ToArray();
        var got = Run(k, logits, rows, vocab, p, keys);
        Assert.All(got.Tokens, t => Assert.True(t is 3 or 37));
    }

    [Theory]
    [InlineData(0, "row 0")]
    [InlineData(2, "row 2")]
    public void NaNIsRejectedNamingTheRow(int badRow, string expected)
    {
        using var k = Backends.Create(Backends.Cpu);
        var logits = new float[3 * 50];
        logits[badRow * 50 + 17] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => Run(k, logits, 3, 50, Def(3), new RngKey[3]));
        Assert.Contains(expected, e.Message);
        Assert.Contains("NaN", e.Message);
        Assert.Contains("index 17", e.Message);
    }

    [Fact]
    public void PositiveInfinityAndFullyMaskedRowsAreRejected()
    {
        using var k = Backends.Create(Backends.Cpu);
        var logits = new float[2 * 9];
        logits[9 + 4] = float.PositiveInfinity;
        Assert.Contains("row 1", Assert.Throws<ArgumentException>(() => Run(k, logits, 2, 9, Def(2), new RngKey[2])).Message);
        Array.Fill(logits, float.NegativeInfinity);
        Assert.Contains("masked", Assert.Throws<ArgumentException>(() => Run(k, logits, 2, 9, Def(2), new RngKey[2])).Message);
    }

    [Theory]
    [InlineData(float.NaN, 0, 1f, "Temperature")]
    [InlineData(-0.5f, 0, 1f, "Temperature")]
    [InlineData(float.PositiveInfinity, 0, 1f, "Temperature")]
    [InlineData(1f, -1, 1f, "TopK")]
    [InlineData(1f, 0, 0f, "TopP")]
    [InlineData(1f, 0, 1.5f, "TopP")]
    [InlineData(1f, 0, float.NaN, "TopP")]
    public void BadParametersAreRejectedNamingTheField(float t, int k, float p, string field)
    {
        var e = Assert.Throws<ArgumentException>(() => new SamplingParameters(t, k, p).Validate());
        Assert.Equal(field, e.ParamName);
        using var kernels = Backends.Create(Backends.Cpu);
        var e2 = Assert.Throws<ArgumentException>(() =>
            Run(kernels, new float[8], 2, 4, [new SamplingParameters(), new SamplingParameters(t, k, p)], new RngKey[2]));
        Assert.Contains("parameters[1]", e2.Message);
        Assert.Contains(field, e2.Message);
    }

    [Fact]
    public void TemperatureBelowTheMinimumIsRejectedAsATemperature()
    {
        using var k = Backends.Create(Backends.Cpu);
        float[] logits = [100f, 50f, 1f];
        var e = Assert.Throws<ArgumentException>(() => Run(k, logits, 1, 3, [new SamplingParameters(1e-37f)], [default]));
        Assert.Contains("Temperature must be 0 (greedy) or a finite number >= 0.0001, got 1E-37", e.Message);
        Assert.DoesNotContain("beta", e.Message);
    }

    [Fact]
    public void ScoresThatOverflowAreRejected()
    {
        using var k = Backends.Create(Backends.Cpu);
        float[] logits = [3e38f, 50f, 1f];
        var e = Assert.Throws<ArgumentException>(() => Run(k, logits, 1, 3, [new SamplingParameters(1e-3f)], [default]));
        Assert.Contains("overflowed", e.Message);
    }

    [Fact]
    public void ShapeMismatchesAreRejected()
    {
        using var k = Backends.Create(Backends.Cpu);
        Assert.Throws<ArgumentException>(() => k.SampleBase(new float[7], 2, 4, Def(2), new RngKey[2], new int[2], new float[2], new float[2]));
        Assert.Throws<ArgumentException>(() => k.SampleBase(new float[8], 2, 4, Def(1), new RngKey[2], new int[2], new float[2], new float[2]));
        Assert.Throws<ArgumentException>(() => k.SampleBase(new float[8], 2, 4, Def(2), new RngKey[2], new int[2], new float[1], new float[2]));
        Assert.Throws<ArgumentException>(() => k.SampleBase(new float[8], 2, 0, Def(2), new RngKey[2], new int[2], new float[2], new float[2]));
        k.SampleBase([], 0, 4, [], [], [], [], []); // an empty batch is fine
    }

    [Fact]
    public void AllocatesNothingPerCallAfterWarmUp()
    {
        var rng = new Random(23);
        const int rows = 64, vocab = 4099;
        var logits = TestData.Logits(rng, rows, vocab);
        var (p, keys) = Rows(rng, rows);
        using var k = Backends.Create(Backends.Cpu);
        var tokens = new int[rows];
        var b = new float[rows];
        var s = new float[rows];
        for (int i = 0; i < 3; i++)
            k.SampleBase(logits, rows, vocab, p, keys, tokens, b, s);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++)
            k.SampleBase(logits, rows, vocab, p, keys, tokens, b, s);
        k.SampleBase(logits.AsSpan(0, vocab), 1, vocab, p, keys, tokens, b, s);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
