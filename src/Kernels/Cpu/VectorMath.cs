using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Tilt.Kernels.Cpu;

/// <summary>
/// Fast exponentials for the partition sums (not for anything that decides a token). Vector256.Exp(float) computes
/// in double internally and costs ~2 ns per lane here, which made log-sum-exp compute-bound at several times the
/// memory time.
/// </summary>
internal static class VectorMath
{
    /// <summary>e^x for float lanes (Cephes expf: relative error &lt; 2e-7); 0 below -87.3 (so -inf gives 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        Vector256<float> under = Vector256.LessThan(x, Vector256.Create(-87.3f));
        x = Vector256.MinNative(Vector256.MaxNative(x, Vector256.Create(-87.3f)), Vector256.Create(88.7f));
        // Adding 1.5 * 2^23 rounds x log2(e) to an integer n held in the low mantissa bits: no round or convert
        // instruction (whose saturating .NET semantics cost extra fix-up code).
        Vector256<float> magic = Vector256.Create(12582912f);
        Vector256<float> j = Vector256.FusedMultiplyAdd(x, Vector256.Create(1.44269504088896341f), magic);
        Vector256<float> n = j - magic;
        Vector256<float> r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-0.693359375f), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(2.12194440e-4f), r);
        Vector256<float> p = Vector256.Create(1.9875691500e-4f);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.3981999507e-3f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(8.3334519073e-3f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(4.1665795894e-2f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.6666665459e-1f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(5.0000001201e-1f));
        p = Vector256.FusedMultiplyAdd(p, r * r, r + Vector256<float>.One);
        Vector256<int> scale = (j.AsInt32() + Vector256.Create(127)) << 23;
        return Vector256.AndNot(p * scale.AsSingle(), under);
    }

    /// <summary>Max of a span and whether it holds a NaN (x86 max semantics plus an unordered-compare accumulator;
    /// TensorPrimitives.Max's NaN-propagating max costs ~4x more here).</summary>
    public static float MaxAndNaN(ReadOnlySpan<float> x, out bool hasNaN)
    {
        ref float r = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float m = float.NegativeInfinity;
        hasNaN = false;
        if (Vector256.IsHardwareAccelerated && n >= 32)
        {
            Vector256<float> m0 = Vector256.Create(float.NegativeInfinity), m1 = m0, m2 = m0, m3 = m0;
            Vector256<float> nan = Vector256<float>.Zero;
            for (; i <= n - 32; i += 32)
            {
                Vector256<float> a = Vector256.LoadUnsafe(ref r, (nuint)i), b = Vector256.LoadUnsafe(ref r, (nuint)(i + 8));
                Vector256<float> c = Vector256.LoadUnsafe(ref r, (nuint)(i + 16)), d = Vector256.LoadUnsafe(ref r, (nuint)(i + 24));
                m0 = Vector256.MaxNative(m0, a); m1 = Vector256.MaxNative(m1, b);
                m2 = Vector256.MaxNative(m2, c); m3 = Vector256.MaxNative(m3, d);
                nan |= ~Vector256.Equals(a, a) | ~Vector256.Equals(b, b) | ~Vector256.Equals(c, c) | ~Vector256.Equals(d, d);
            }
            Vector256<float> mm = Vector256.MaxNative(Vector256.MaxNative(m0, m1), Vector256.MaxNative(m2, m3));
            for (int k = 0; k < 8; k++)
                m = Math.Max(m, mm.GetElement(k));
            hasNaN = nan != Vector256<float>.Zero;
        }
        for (; i < n; i++)
        {
            float v = System.Runtime.CompilerServices.Unsafe.Add(ref r, i);
            if (float.IsNaN(v))
                hasNaN = true;
            else if (v > m)
                m = v;
        }
        return m;
    }

    /// <summary>e^x for double lanes (the scheme of <see cref="DeviceFloat.Exp"/>: ~1e-16); 0 below -708.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Exp(Vector256<double> x)
    {
        Vector256<double> under = Vector256.LessThan(x, Vector256.Create(-708.0));
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(-708.0)), Vector256.Create(709.0));
        Vector256<double> n = Vector256.Round(x * Vector256.Create(1.4426950408889634));
        Vector256<double> r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-0.6931471803691238), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-1.9082149292705877e-10), r);
        Vector256<double> p = Vector256.Create(1.0 / 6227020800.0);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 479001600.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 39916800.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 3628800.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 362880.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 40320.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 5040.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 720.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 120.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 24.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 6.0));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(0.5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<double>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<double>.One);
        Vector256<long> scale = (Vector256.ConvertToInt64(n) + Vector256.Create(1023L)) << 52;
        return Vector256.AndNot(p * scale.AsDouble(), under);
    }
}
