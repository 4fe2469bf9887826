using Tilt.Kernels;

namespace Tilt.Kernels.Tests;

public class ValueHeadTests
{
    internal static float[] RandomArray(Random rng, int n, float scale = 1f) =>
        Enumerable.Range(0, n).Select(_ => scale * TestData.Normal(rng)).ToArray();

    internal static double Erf(double x)
    {
        // Maclaurin series, converges fast for the |x| < 6 used here; far more accurate than the head's 1.5e-7.
        if (Math.Abs(x) > 6)
            return Math.Sign(x);
        double sum = 0, term = x;
        for (int n = 0; n < 200; n++)
        {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    internal static double[] Reference(ValueHead head, float[] hidden, int rows)
    {
        int d = head.InputSize;
        var v = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double[] h = hidden.Skip(r * d).Take(d).Select(f => (double)f).ToArray();
            if (head is LinearValueHead lin)
            {
                v[r] = lin.Bias + h.Select((x, i) => x * lin.Weights[i]).Sum();
            }
            else
            {
                var mlp = (MlpValueHead)head;
                double acc = mlp.B2;
                for (int j = 0; j < mlp.HiddenUnits; j++)
                {
                    double a = mlp.B1[j];
                    for (int i = 0; i < d; i++)
                        a += mlp.W1[j * d + i] * h[i];
                    a = mlp.Activation == HeadActivation.Relu ? Math.Max(0, a) : 0.5 * a * (1 + Erf(a / Math.Sqrt(2)));
                    acc += mlp.W2[j] * a;
                }
                v[r] = acc;
            }
        }
        return v;
    }

    internal static MlpValueHead Mlp(Random rng, int d, int units, HeadActivation act) => new(
        RandomArray(rng, units * d, 1f / MathF.Sqrt(d)), RandomArray(rng, units, 0.5f), RandomArray(rng, units, 1f / MathF.Sqrt(units)),
        0.25f, act);

    // float32 dot products of length d against float64: error ~ sqrt(d) * 6e-8 * |terms|; 1e-5 relative to the sum of
    // absolute contributions is a loose, size-independent bound.
    internal static void AssertClose(double[] want, float[] got, string what)
    {
        for (int r = 0; r < want.Length; r++)
            Assert.True(Math.Abs(got[r] - want[r]) <= 2e-5 * (1 + Math.Abs(want[r])), $"{what} row {r}: {got[r]} vs {want[r]}");
    }

    public static TheoryData<int, int, int> Shapes => new() { { 1, 1, 1 }, { 3, 7, 5 }, { 5, 64, 16 }, { 9, 65, 3 }, { 33, 769, 32 }, { 257, 40, 8 } };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void HeadsMatchFloat64Reference(int rows, int d, int units)
    {
        var rng = new Random(rows * 13 + d);
        var hidden = RandomArray(rng, rows * d);
        using var k = Backends.Create(Backends.Cpu);
        ValueHead[] heads =
        [
            new LinearValueHead(RandomArray(rng, d, 1f / MathF.Sqrt(d)), -0.5f),
            Mlp(rng, d, units, HeadActivation.Relu),
            Mlp(rng, d, units, HeadActivation.Gelu),
        ];
        foreach (var head in heads)
        {
            var want = Reference(head, hidden, rows);
            var got = new float[rows];
            head.Score(hidden, rows, got);
            AssertClose(want, got, head.GetType().Name);
            var viaBackend = new float[rows];
            k.ScoreValues(head, hidden, rows, viaBackend);
            Assert.Equal(got, viaBackend);
        }
    }

    [Fact]
    public void LargeBatchesSplitAcrossThreadsGiveTheSameValues()
    {
        var rng = new Random(3);
        const int rows = 256, d = 768;
        var hidden = RandomArray(rng, rows * d);
        var head = Mlp(rng, d, 64, HeadActivation.Gelu);
        var single = new float[rows];
        head.Score(hidden, rows, single);
        using var k = Backends.Create(Backends.Cpu);
        var parallel = new float[rows];
        k.ScoreValues(head, hidden, rows, parallel);
        Assert.Equal(single, parallel);
    }

    [Fact]
    public void MultiObjectiveHeadIsTheWeightedSum()
    {
        var rng = new Random(5);
        const int rows = 11, d = 33;
        var hidden = RandomArray(rng, rows * d);
        var a = new LinearValueHead(RandomArray(rng, d), 0.1f);
        var b = Mlp(rng, d, 4, HeadActivation.Relu);
        var multi = new MultiObjectiveValueHead([a, b]);
        var weights = RandomArray(rng, rows * 2);
        var got = new float[rows];
        using var k = Backends.Create(Backends.Cpu);
        k.ScoreValues(multi, hidden, rows, weights, got);
        var va = Reference(a, hidden, rows);
        var vb = Reference(b, hidden, rows);
        AssertClose(Enumerable.Range(0, rows).Select(r => weights[2 * r] * va[r] + weights[2 * r + 1] * vb[r]).ToArray(), got, "multi");
        var direct = new float[rows];
        multi.Score(hidden, rows, weights, direct);
        Assert.Equal(got, direct);
    }

    [Fact]
    public void BadShapesAndWeightsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new LinearValueHead([], 0f));
        Assert.Throws<ArgumentException>(() => new LinearValueHead([1f, float.NaN], 0f));
        Assert.Throws<ArgumentException>(() => new MlpValueHead(new float[10], new float[3], new float[3], 0f));
        Assert.Throws<ArgumentException>(() => new MultiObjectiveValueHead([new LinearValueHead([1f], 0f), new LinearValueHead([1f, 2f], 0f)]));
        var head = new LinearValueHead([1f, 2f], 0f);
        Assert.Throws<ArgumentException>(() => head.Score(new float[3], 2, new float[2]));
        Assert.Throws<ArgumentException>(() => head.Score(new float[4], 2, new float[1]));
    }

    [Fact]
    public void ScoringAllocatesNothingAfterWarmUp()
    {
        var rng = new Random(9);
        const int rows = 64, d = 256;
        var hidden = RandomArray(rng, rows * d);
        var head = Mlp(rng, d, 32, HeadActivation.Gelu);
        var multi = new MultiObjectiveValueHead([head, new LinearValueHead(RandomArray(rng, d), 0f)]);
        var weights = RandomArray(rng, rows * 2);
        var values = new float[rows];
        using var k = Backends.Create(Backends.Cpu);
        k.ScoreValues(head, hidden, rows, values);
        k.ScoreValues(multi, hidden, rows, weights, values);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5; i++)
        {
            k.ScoreValues(head, hidden, rows, values);
            k.ScoreValues(multi, hidden, rows, weights, values);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
