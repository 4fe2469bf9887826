using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Tilt.Kernels;

/// <summary>
/// Standard Gumbel noise g = -log(-log(u)) from a Philox word, bit-identical on every backend.
/// </summary>
/// <remarks>
/// u = ((bits >> 9) + 1/2) * 2^-23 lies on a 2^-23 grid strictly inside (0, 1), exactly representable, so
/// g is bounded: g &lt;= -log(-log(1 - 2^-24)) = 16.6355. <see cref="UpperBound"/> lets the samplers skip the noise
/// of any token whose score is more than the bound below the best perturbed score found so far: such a token
/// cannot win whatever its noise, so skipping it is exact.
/// </remarks>
public static class GumbelNoise
{
    /// <summary>Strict upper bound on every noise value (the true maximum is 16.6355; the margin covers rounding).</summary>
    public const float UpperBound = 16.75f;

    private const float Grid = 1.1920928955078125e-07f; // 2^-23

    /// <summary>Noise for one Philox word. Scalar reference, also compiled into the ILGPU kernels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FromBits(uint bits)
    {
        float u = DeviceFloat.Mul(DeviceFloat.Add((int)(bits >> 9), 0.5f), Grid);
        float e = -DeviceFloat.Log(u);
        return -DeviceFloat.Log(e);
    }

    /// <summary>Noise for token id <paramref name="column"/> in stream <paramref name="key"/>.</summary>
    public static float Sample(in RngKey key, int column) => FromBits(Philox.Bits(key, column));

    /// <summary>SIMD twin of <see cref="FromBits(uint)"/>: the same operations in the same order, so the same bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FromBits(Vector256<uint> bits)
    {
        Vector256<float> u = (Vector256.ConvertToSingle((bits >> 9).AsInt32()) + Vector256.Create(0.5f)) * Vector256.Create(Grid);
        Vector256<float> e = -Log(u);
        return -Log(e);
    }

    /// <summary>SIMD twin of <see cref="DeviceFloat.Log"/>, op for op.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Log(Vector256<float> x)
    {
        Vector256<uint> ix = x.AsUInt32() + Vector256.Create(0x3f800000u - 0x3f3504f3u);
        Vector256<int> k = (ix >> 23).AsInt32() - Vector256.Create(0x7f);
        ix = (ix & Vector256.Create(0x007fffffu)) + Vector256.Create(0x3f3504f3u);
        Vector256<float> f = ix.AsSingle() - Vector256<float>.One;
        Vector256<float> s = f / (Vector256.Create(2f) + f);
        Vector256<float> z = s * s;
        Vector256<float> w = z * z;
        Vector256<float> t1 = w * (Vector256.Create(0.40000972152f) + w * Vector256.Create(0.24279078841f));
        Vector256<float> t2 = z * (Vector256.Create(0.66666662693f) + w * Vector256.Create(0.28498786688f));
        Vector256<float> r = t2 + t1;
        Vector256<float> hfsq = Vector256.Create(0.5f) * f * f;
        Vector256<float> dk = Vector256.ConvertToSingle(k);
        return s * (hfsq + r) + dk * Vector256.Create(9.0580006145e-06f) - hfsq + f + dk * Vector256.Create(6.9313812256e-01f);
    }

    /// <summary>Noise for the 32 columns [firstColumn, +32) (firstColumn a multiple of 32), in column order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Block32(in RngKey key, int firstColumn,
        out Vector256<float> g0, out Vector256<float> g1, out Vector256<float> g2, out Vector256<float> g3)
    {
        Philox.Block32(key, firstColumn, out Vector256<uint> w0, out Vector256<uint> w1, out Vector256<uint> w2, out Vector256<uint> w3);
        g0 = FromBits(w0);
        g1 = FromBits(w1);
        g2 = FromBits(w2);
        g3 = FromBits(w3);
    }
}
