using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Tilt.Kernels.Cpu;

/// <summary>
/// The row-level building blocks of the SIMD CPU backend. Each works on one row (a span) and allocates nothing;
/// the backends compose them per row. Scores that decide a sampled token use the exact operations of
/// <see cref="DeviceFloat"/> so that the ILGPU kernels reproduce them bit for bit.
/// </summary>
internal static partial class RowMath
{
    /// <summary>Max of a row, rejecting NaN, +inf and rows that are entirely masked (-inf).</summary>
    public static float CheckedMax(ReadOnlySpan<float> x, int row, string name)
    {
        float m = VectorMath.MaxAndNaN(x, out bool hasNaN);
        if (hasNaN)
            throw new ArgumentException($"{name} row {row} contains NaN (at index {IndexOfNaN(x)}).", name);
        if (float.IsPositiveInfinity(m))
            throw new ArgumentException($"{name} row {row} contains +infinity (at index {x.IndexOf(float.PositiveInfinity)}); only -infinity (masked) is allowed.", name);
        if (float.IsNegativeInfinity(m))
            throw new ArgumentException($"{name} row {row} is entirely masked (every entry is -infinity): nothing can be sampled.", name);
        return m;
    }

    private static int IndexOfNaN(ReadOnlySpan<float> x)
    {
        for (int i = 0; i < x.Length; i++)
            if (float.IsNaN(x[i]))
                return i;
        return -1;
    }

    /// <summary>Sum of exp((x - shift) * scale), float lanes summed in double at the end.</summary>
    public static double SumExp(ReadOnlySpan<float> x, float shift, float scale)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        double sum = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> mv = Vector256.Create(shift), sv = Vector256.Create(scale);
            Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
            // Four accumulators hide the latency of the exp + add chain.
            for (; i <= n - 32; i += 32)
            {
                a0 += VectorMath.Exp((Vector256.LoadUnsafe(ref r, (nuint)i) - mv) * sv);
                a1 += VectorMath.Exp((Vector256.LoadUnsafe(ref r, (nuint)(i + 8)) - mv) * sv);
                a2 += VectorMath.Exp((Vector256.LoadUnsafe(ref r, (nuint)(i + 16)) - mv) * sv);
                a3 += VectorMath.Exp((Vector256.LoadUnsafe(ref r, (nuint)(i + 24)) - mv) * sv);
            }
            for (; i <= n - 8; i += 8)
                a0 += VectorMath.Exp((Vector256.LoadUnsafe(ref r, (nuint)i) - mv) * sv);
            sum = Vector256.Sum((a0 + a1) + (a2 + a3));
        }
        for (; i < n; i++)
            sum += MathF.Exp((Unsafe.Add(ref r, i) - shift) * scale);
        return sum;
    }

    /// <summary>First index i with x[i] == value (so -0 and +0 tie, and the lowest id wins), or -1.</summary>
    public static int FirstIndexOf(ReadOnlySpan<float> x, float value)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> v = Vector256.Create(value);
            for (; i <= n - 8; i += 8)
            {
                uint mask = Vector256.Equals(Vector256.LoadUnsafe(ref r, (nuint)i), v).ExtractMostSignificantBits();
                if (mask != 0)
                    return i + System.Numerics.BitOperations.TrailingZeroCount(mask);
            }
        }
        for (; i < n; i++)
            if (Unsafe.Add(ref r, i) == value)
                return i;
        return -1;
    }

    /// <summary>
    /// Gumbel-max over the whole row: argmax_c (x[c]/t + g(key, c)), lowest id on exact ties. <paramref name="maxIndex"/>
    /// (the first index of the row max) seeds the running best. A 32-token block is skipped without drawing its
    /// tokens' noise when its best score plus its noise bound G_b (see <see cref="GumbelNoise"/>) stays below the running
    /// best: none of its tokens can win, so the result is exact. The margin covers float rounding of s + g.
    /// </summary>
    public static int GumbelArgmax(ReadOnlySpan<float> x, float t, in RngKey key, int maxIndex)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        int n = x.Length;
        int bestId = maxIndex;
        float best = DeviceFloat.Add(DeviceFloat.Div(x[maxIndex], t), GumbelNoise.Sample(key, maxIndex, n));
        float margin = 1e-3f + 1e-6f * Math.Abs(best);
        int i = 0;
        if (Philox.IsVectorized)
        {
            bool unit = t == 1f; // x / 1 == x exactly, so the division can be skipped without changing a bit
            Vector256<float> tv = Vector256.Create(t);
            Span<float> v = stackalloc float[32];
            ref float vr = ref MemoryMarshal.GetReference(v);
            for (; i <= n - 256; i += 256)
            {
                GumbelNoise.BlockDraw8(key, i >> 5, out Vector256<float> first, out Vector256<uint> offset, out Vector256<float> bound);
                for (int q = 0; q < 8; q++)
                {
                    int c = i + 32 * q;
                    Vector256<float> s0 = Vector256.LoadUnsafe(ref r, (nuint)c);
                    Vector256<float> s1 = Vector256.LoadUnsafe(ref r, (nuint)(c + 8));
                    Vector256<float> s2 = Vector256.LoadUnsafe(ref r, (nuint)(c + 16));
                    Vector256<float> s3 = Vector256.LoadUnsafe(ref r, (nuint)(c + 24));
                    if (!unit)
                    {
                        s0 /= tv; s1 /= tv; s2 /= tv; s3 /= tv;
                    }
                    float smax = HorizontalMax(Vector256.MaxNative(Vector256.MaxNative(s0, s1), Vector256.MaxNative(s2, s3)));
                    if (smax + bound.GetElement(q) + margin < best)
                        continue;
                    GumbelNoise.Block32(key, c, first.GetElement(q), offset.GetElement(q), out var g0, out var g1, out var g2, out var g3);
                    Vector256<float> v0 = s0 + g0, v1 = s1 + g1, v2 = s2 + g2, v3 = s3 + g3;
                    Vector256<float> vmax = Vector256.MaxNative(Vector256.MaxNative(v0, v1), Vector256.MaxNative(v2, v3));
                    if (!Vector256.GreaterThanOrEqualAny(vmax, Vector256.Create(best)))
                        continue;
                    v0.StoreUnsafe(ref vr, 0);
                    v1.StoreUnsafe(ref vr, 8);
                    v2.StoreUnsafe(ref vr, 16);
                    v3.StoreUnsafe(ref vr, 24);
                    for (int j = 0; j < 32; j++)
                    {
                        float vj = Unsafe.Add(ref vr, j);
                        if (vj > best || (vj == best && c + j < bestId))
                        {
                            best = vj;
                            bestId = c + j;
                        }
                    }
                    margin = 1e-3f + 1e-6f * Math.Abs(best);
                }
            }
        }
        uint lo = (uint)key.Seed, hi = (uint)(key.Seed >> 32);
        int cachedBlock = -1, firstOffset = 0;
        float firstArrival = 0, blockBound = 0;
        for (; i < n; i++)
        {
            float s = DeviceFloat.Div(Unsafe.Add(ref r, i), t);
            if (s + GumbelNoise.UpperBound < best)
                continue;
            if (i >> 5 != cachedBlock)
            {
                cachedBlock = i >> 5;
                GumbelNoise.BlockDraw(key.Row, key.Step, key.Request, lo, hi, cachedBlock, n, out firstArrival, out firstOffset);
                blockBound = -DeviceFloat.Log(firstArrival);
            }
            if (s + blockBound + margin < best)
                continue;
            float vi = DeviceFloat.Add(s, GumbelNoise.FromBlock(key.Row, key.Step, key.Request, lo, hi, i, firstArrival, firstOffset));
            if (vi > best || (vi == best && i < bestId))
            {
                best = vi;
                bestId = i;
                margin = 1e-3f + 1e-6f * Math.Abs(best);
            }
        }
        return bestId;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalMax(Vector256<float> v)
    {
        Vector128<float> m = Vector128.MaxNative(v.GetLower(), v.GetUpper());
        m = Vector128.MaxNative(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.MaxNative(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    /// <summary>Token id at position j: the candidate list when there is one, else j itself.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Id(ReadOnlySpan<int> ids, int j) => ids.IsEmpty ? j : ids[j];

    /// <summary>
    /// Gumbel-max over a candidate list (scores already tempered and tilted): the position j maximising
    /// s[j] + g(key, ids[j]), lowest token id on exact ties, skipping the noise of candidates that cannot win.
    /// </summary>
    public static int GumbelArgmaxList(ReadOnlySpan<float> s, ReadOnlySpan<int> ids, in RngKey key, int maxPosition, int vocab)
    {
        int bestPos = maxPosition, bestId = ids[maxPosition];
        float best = DeviceFloat.Add(s[maxPosition], GumbelNoise.Sample(key, bestId, vocab));
        for (int j = 0; j < s.Length; j++)
        {
            float sj = s[j];
            if (sj < best - GumbelNoise.UpperBound)
                continue;
            int id = ids[j];
            float v = DeviceFloat.Add(sj, GumbelNoise.Sample(key, id, vocab));
            if (v > best || (v == best && id < bestId))
            {
                best = v;
                bestId = id;
                bestPos = j;
            }
        }
        return bestPos;
    }

    /// <summary>Position of the maximum score, the lowest token id among exact ties.</summary>
    public static int ArgmaxPosition(ReadOnlySpan<float> s, ReadOnlySpan<int> ids, float max)
    {
        if (ids.IsEmpty)
            return FirstIndexOf(s, max);
        int best = -1;
        for (int j = 0; j < s.Length; j++)
            if (s[j] == max && (best < 0 || ids[j] < ids[best]))
                best = j;
        return best;
    }

    /// <summary>
    /// Gumbel-max over survivors sorted best first (see <see cref="SortKey"/>); returns the winner's position. Once a
    /// survivor's score lies more than the noise bound below the running best, no later one can win.
    /// </summary>
    public static int GumbelArgmaxSorted(ReadOnlySpan<ulong> sorted, in RngKey key, int vocab)
    {
        float best = float.NegativeInfinity;
        int bestId = -1, bestPos = -1;
        for (int j = 0; j < sorted.Length; j++)
        {
            ulong k = sorted[j];
            int id = IdOf(k);
            float s = ScoreOf(k);
            if (s < best - GumbelNoise.UpperBound)
                break;
            float v = DeviceFloat.Add(s, GumbelNoise.Sample(key, id, vocab));
            if (v > best || (v == best && id < bestId))
            {
                best = v;
                bestId = id;
                bestPos = j;
            }
        }
        return bestPos;
    }

    /// <summary>Sum of exp(s - s[first]) over sorted survivors, in float64.</summary>
    public static double SumExpSorted(ReadOnlySpan<ulong> sorted)
    {
        double s0 = ScoreOf(sorted[0]), sum = 0;
        foreach (ulong k in sorted)
            sum += Math.Exp(ScoreOf(k) - s0);
        return sum;
    }

    /// <summary>
    /// Sum over sorted survivors of exp(s - s[first]) * (s - x[id]), the unnormalised first term of
    /// KL(pi || p) = E_pi[s - x] + logZ_p - logZ_pi.
    /// </summary>
    public static double KlTermSorted(ReadOnlySpan<ulong> sorted, ReadOnlySpan<float> x)
    {
        double s0 = ScoreOf(sorted[0]), sum = 0;
        foreach (ulong k in sorted)
        {
            double sk = ScoreOf(k);
            sum += Math.Exp(sk - s0) * (sk - x[IdOf(k)]);
        }
        return sum;
    }

    /// <summary>Sum of exp(s - shift) in float64 lanes (the nucleus needs its total to ~1e-16, not ~1e-7).</summary>
    public static double SumExpDouble(ReadOnlySpan<float> s, float shift)
    {
        ref float r = ref MemoryMarshal.GetReference(s);
        int n = s.Length, i = 0;
        double sum = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<double> mv = Vector256.Create((double)shift);
            Vector256<double> a0 = Vector256<double>.Zero, a1 = a0;
            for (; i <= n - 8; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref r, (nuint)i));
                a0 += VectorMath.Exp(lo - mv);
                a1 += VectorMath.Exp(hi - mv);
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++)
            sum += Math.Exp((double)Unsafe.Add(ref r, i) - shift);
        return sum;
    }

    /// <summary>
    /// For scores s = raw / divisor over all candidates: Z = sum exp(s - shift) and A = sum exp(s - shift) * (s - x[id]),
    /// in float64 (entries at -inf contribute 0). KL(pi || p) = A / Z + logZ_p - (shift + log Z).
    /// </summary>
    public static (double Z, double A) KlSums(ReadOnlySpan<float> raw, float divisor, ReadOnlySpan<int> ids, ReadOnlySpan<float> x, float shift)
    {
        ref float r = ref MemoryMarshal.GetReference(raw);
        int n = raw.Length, i = 0;
        double z = 0, a = 0;
        if (ids.IsEmpty && Vector256.IsHardwareAccelerated)
        {
            ref float xr = ref MemoryMarshal.GetReference(x);
            Vector256<float> dv = Vector256.Create(divisor);
            Vector256<double> z0 = Vector256<double>.Zero, z1 = z0, a0 = z0, a1 = z0;
            for (; i <= n - 8; i += 8)
            {
                Vector256<float> sv = Vector256.LoadUnsafe(ref r, (nuint)i);
                if (divisor != 1f)
                    sv /= dv;
                Vector256<float> live = ~Vector256.Equals(sv, Vector256.Create(float.NegativeInfinity));
                // Float exp (relative error 2e-7 per weight) and a float difference, summed in float64: the sums of up to
                // 128k terms keep ~1e-7 relative accuracy, and the float64 exp's cost (4 lanes, degree 13) is avoided.
                // Masked lanes contribute 0 (their s - x would be inf - inf).
                Vector256<float> w = VectorMath.Exp(sv - Vector256.Create(shift));
                Vector256<float> wd = w * Vector256.ConditionalSelect(live, sv - Vector256.LoadUnsafe(ref xr, (nuint)i), Vector256<float>.Zero);
                var (wlo, whi) = Vector256.Widen(w);
                var (dlo, dhi) = Vector256.Widen(wd);
                z0 += wlo;
                z1 += whi;
                a0 += dlo;
                a1 += dhi;
            }
            z = Vector256.Sum(z0 + z1);
            a = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++)
        {
            float sj = divisor == 1f ? Unsafe.Add(ref r, i) : DeviceFloat.Div(Unsafe.Add(ref r, i), divisor);
            if (sj == float.NegativeInfinity)
                continue;
            double w = Math.Exp((double)sj - shift);
            z += w;
            a += w * ((double)sj - x[Id(ids, i)]);
        }
        return (z, a);
    }

    /// <summary>Number of entries that are not -inf.</summary>
    public static int CountFinite(ReadOnlySpan<float> x)
    {
        int n = 0;
        foreach (float v in x)
            if (v != float.NegativeInfinity)
                n++;
        return n;
    }

    /// <summary>Rejects NaN and +inf in a row of values (-inf is allowed: it masks the candidate).</summary>
    public static void CheckValues(ReadOnlySpan<float> v, int row, string name)
    {
        float m = VectorMath.MaxAndNaN(v, out bool hasNaN);
        if (hasNaN)
            throw new ArgumentException($"{name} row {row} contains NaN (at index {IndexOfNaN(v)}).", name);
        if (float.IsPositiveInfinity(m))
            throw new ArgumentException($"{name} row {row} contains +infinity (at index {v.IndexOf(float.PositiveInfinity)}).", name);
    }
}
