using System.Runtime.Intrinsics;
using Tilt.Kernels;

namespace Tilt.Kernels.Tests;

public class GumbelNoiseTests
{
    [Fact]
    public void LogIsWithinTwoUlpOfMathLog()
    {
        var rng = new Random(3);
        for (int i = 0; i < 200_000; i++)
        {
            float x = i < 100_000 ? (float)Math.Exp(rng.NextDouble() * 80 - 40) : 1f + (float)(rng.NextDouble() - 0.5) * 1e-3f;
            double exact = Math.Log(x);
            float got = DeviceFloat.Log(x);
            double ulp = Math.Max(MathF.BitIncrement(Math.Abs((float)exact)) - Math.Abs((float)exact), float.Epsilon);
            Assert.True(Math.Abs(got - exact) <= 2 * ulp, $"log({x:R}) = {got:R}, exact {exact:R}");
        }
    }

    [Fact]
    public void SimdExponentialIsBitIdenticalToScalarForEveryGridPoint()
    {
        if (!Vector256.IsHardwareAccelerated)
            return;
        // E depends only on bits >> 9: all 2^23 grid points are checked, which covers every possible value.
        var lanes = new uint[8];
        for (uint hi = 0; hi < 1u << 23; hi += 8)
        {
            for (uint j = 0; j < 8; j++)
                lanes[j] = (hi + j) << 9;
            Vector256<float> e = GumbelNoise.Exponential(Vector256.Create(lanes));
            for (int j = 0; j < 8; j++)
            {
                float s = GumbelNoise.Exponential(lanes[j]);
                if (BitConverter.SingleToInt32Bits(s) != BitConverter.SingleToInt32Bits(e[j]))
                    Assert.Fail($"bits {lanes[j]:x8}: scalar {s:R}, simd {e[j]:R}");
            }
        }
    }

    [Fact]
    public void SimdLogIsBitIdenticalToScalarOnSums()
    {
        // The block path takes logs of A + E, values the grid test does not cover.
        var rng = new Random(2);
        var lanes = new float[8];
        for (int i = 0; i < 200_000; i++)
        {
            for (int j = 0; j < 8; j++)
                lanes[j] = (float)Math.Exp(rng.NextDouble() * 26 - 23);
            Vector256<float> v = GumbelNoise.Log(Vector256.Create(lanes));
            for (int j = 0; j < 8; j++)
                Assert.Equal(BitConverter.SingleToInt32Bits(DeviceFloat.Log(lanes[j])), BitConverter.SingleToInt32Bits(v[j]));
        }
    }

    [Fact]
    public void SimdBlockNoiseIsBitIdenticalToScalarSample()
    {
        if (!Philox.IsVectorized)
            return;
        var rng = new Random(4);
        for (int trial = 0; trial < 100; trial++)
        {
            var key = new RngKey((ulong)rng.NextInt64(), (uint)rng.Next(), (uint)rng.Next(), (uint)rng.Next());
            int columns = 256 * (1 + rng.Next(8)) + rng.Next(300);
            int firstBlock = 8 * rng.Next(columns / 256);
            GumbelNoise.BlockDraw8(key, firstBlock, out var first, out var offset, out var bound);
            for (int q = 0; q < 8; q++)
            {
                int c = (firstBlock + q) * 32;
                GumbelNoise.Block32(key, c, first[q], offset[q], out var g0, out var g1, out var g2, out var g3);
                Vector256<float>[] g = [g0, g1, g2, g3];
                for (int j = 0; j < 32; j++)
                {
                    float want = GumbelNoise.Sample(key, c + j, columns);
                    Assert.Equal(BitConverter.SingleToInt32Bits(want), BitConverter.SingleToInt32Bits(g[j >> 3][j & 7]));
                    Assert.True(want <= bound[q], $"noise {want} above its block bound {bound[q]}");
                }
            }
        }
    }

    [Fact]
    public void ExponentialIsAccurateAndNoiseIsBounded()
    {
        foreach (uint bits in new uint[] { 0, 1u << 9, 0x8000_0000u, 0x1234_5678u, 0xFFFF_0000u, uint.MaxValue })
        {
            double u = ((bits >> 9) + 0.5) / (1 << 23);
            Assert.Equal(-Math.Log(u), GumbelNoise.Exponential(bits), 2e-7 * Math.Max(1, -Math.Log(u)));
        }
        // The largest noise: the first arrival of a full block at the smallest E.
        float top = -DeviceFloat.Log(GumbelNoise.Exponential(uint.MaxValue) / 32f);
        Assert.True(top < GumbelNoise.UpperBound, $"{top}");
        Assert.InRange(top, 20.1f, 20.11f);
    }

    [Theory]
    [InlineData(1 << 18)]
    [InlineData(1000)]
    [InlineData(45)]
    public void NoiseFollowsTheGumbelDistribution(int columns)
    {
        // Kolmogorov-Smirnov against exp(-exp(-g)) over 2^18 draws (rows of `columns` tokens, so that partial last
        // blocks are included). Critical value at alpha = 1e-4: 1.95 / sqrt(n) (fixed seeds; a fresh seed would fail a
        // correct generator ~1e-4 of the time).
        const int n = 1 << 18;
        var g = new double[n];
        for (int i = 0; i < n; i++)
            g[i] = GumbelNoise.Sample(new RngKey(99, 0, (uint)(i / columns), 0), i % columns, columns);
        Array.Sort(g);
        double d = 0;
        for (int i = 0; i < n; i++)
        {
            double cdf = Math.Exp(-Math.Exp(-g[i]));
            d = Math.Max(d, Math.Max(Math.Abs(cdf - (double)i / n), Math.Abs(cdf - (double)(i + 1) / n)));
        }
        Assert.True(d < 1.95 / Math.Sqrt(n), $"KS distance {d}");
    }

    [Fact]
    public void TokensOfOneBlockAreIndependent()
    {
        // Pearson correlation of the noise of two tokens over 20000 streams: |r| < 4 / sqrt(n) = 0.028 (~4 sd; fixed seed).
        const int n = 20_000;
        foreach (var (a, b) in new[] { (0, 1), (3, 31), (64, 90) })
        {
            var x = new double[n];
            var y = new double[n];
            for (int i = 0; i < n; i++)
            {
                var key = new RngKey(5, 1, (uint)i, 2);
                x[i] = GumbelNoise.Sample(key, a, 128);
                y[i] = GumbelNoise.Sample(key, b, 128);
            }
            double mx = x.Average(), my = y.Average();
            double r = x.Zip(y, (u, v) => (u - mx) * (v - my)).Sum() / Math.Sqrt(x.Sum(u => (u - mx) * (u - mx)) * y.Sum(v => (v - my) * (v - my)));
            Assert.True(Math.Abs(r) < 0.028, $"columns {a}, {b}: r = {r}");
        }
    }

    [Fact]
    public void PtxLogBlockUsesTheSameConstants()
    {
        // The CUDA path of DeviceFloat.Log is a PTX block with the constants as hex floats; they must be the C# ones.
        foreach (float c in new[] { DeviceFloat.Lg1, DeviceFloat.Lg2, DeviceFloat.Lg3, DeviceFloat.Lg4, DeviceFloat.Ln2Hi, DeviceFloat.Ln2Lo, 0.5f, 1f, 2f })
            Assert.Contains($"0f{BitConverter.SingleToUInt32Bits(c):X8}", DeviceFloat.LogPtx);
        Assert.Contains($"0x{0x3f800000u - 0x3f3504f3u:X8}", DeviceFloat.LogPtx);
    }

    [Fact]
    public void DoubleExpIsAccurate()
    {
        var rng = new Random(1);
        for (int i = 0; i < 100_000; i++)
        {
            double x = rng.NextDouble() * 1400 - 700;
            double want = Math.Exp(x), got = DeviceFloat.Exp(x);
            Assert.True(Math.Abs(got - want) <= 4e-16 * want, $"exp({x:R}) = {got:R}, want {want:R}");
        }
        Assert.Equal(0.0, DeviceFloat.Exp(double.NegativeInfinity));
        Assert.Equal(0.0, DeviceFloat.Exp(-800));
        Assert.Equal(1.0, DeviceFloat.Exp(0));
    }
}
