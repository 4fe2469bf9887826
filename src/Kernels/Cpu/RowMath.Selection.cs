using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Tilt.Kernels.Cpu;

/// <summary>Top-k and nucleus selection over sort keys (score and id packed so one integer compare orders both).</summary>
internal static partial class RowMath
{
    /// <summary>
    /// A 64-bit key whose ascending order is "higher score first, then lower token id": the high word is the complement
    /// of an order-preserving map of the float, the low word the id. -0 is folded onto +0 so that they tie.
    /// The score can be read back with <see cref="ScoreOf"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SortKey(float score, int id)
    {
        uint bits = BitConverter.SingleToUInt32Bits(score == 0f ? 0f : score);
        uint ordered = (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
        return ((ulong)~ordered << 32) | (uint)id;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int IdOf(ulong sortKey) => (int)(uint)sortKey;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ScoreOf(ulong sortKey)
    {
        uint ordered = ~(uint)(sortKey >> 32);
        uint bits = (ordered & 0x8000_0000u) != 0 ? ordered & 0x7FFF_FFFFu : ~ordered;
        return BitConverter.UInt32BitsToSingle(bits);
    }

    /// <summary>
    /// The min(k, finite entries) best candidates (higher score first, lower token id on ties), sorted, into
    /// heap[..result]. A max-heap of sort keys holds the k best so far; once full, a block of 8 scores all below the
    /// worst kept one is rejected with one compare.
    /// </summary>
    public static int TopK(ReadOnlySpan<float> s, ReadOnlySpan<int> ids, int k, Span<ulong> heap)
    {
        heap = heap[..k];
        ref float r = ref MemoryMarshal.GetReference(s);
        int n = s.Length, count = 0, i = 0;
        for (; i < n && count < k; i++)
        {
            float si = Unsafe.Add(ref r, i);
            if (si == float.NegativeInfinity)
                continue;
            heap[count++] = SortKey(si, Id(ids, i));
            SiftUp(heap, count - 1);
        }
        if (count < k)
        {
            heap[..count].Sort();
            return count;
        }
        float worst = ScoreOf(heap[0]);
        // With dense ids a later equal score has a higher id and loses the tie, so "greater" rejects it; a candidate
        // list can hold a lower id later, so there an equal score must be looked at.
        bool dense = ids.IsEmpty;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - 8; i += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref r, (nuint)i);
                uint mask = (dense ? Vector256.GreaterThan(v, Vector256.Create(worst)) : Vector256.GreaterThanOrEqual(v, Vector256.Create(worst)))
                    .ExtractMostSignificantBits();
                while (mask != 0)
                {
                    int j = System.Numerics.BitOperations.TrailingZeroCount(mask);
                    mask &= mask - 1;
                    Offer(heap, Unsafe.Add(ref r, i + j), Id(ids, i + j), ref worst);
                }
            }
        }
        for (; i < n; i++)
            Offer(heap, Unsafe.Add(ref r, i), Id(ids, i), ref worst);
        heap.Sort();
        return k;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Offer(Span<ulong> heap, float score, int id, ref float worst)
    {
        if (score < worst || score == float.NegativeInfinity)
            return;
        ulong key = SortKey(score, id);
        if (key >= heap[0])
            return;
        heap[0] = key;
        SiftDown(heap, 0);
        worst = ScoreOf(heap[0]);
    }

    private static void SiftUp(Span<ulong> heap, int i)
    {
        ulong item = heap[i];
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (heap[parent] >= item)
                break;
            heap[i] = heap[parent];
            i = parent;
        }
        heap[i] = item;
    }

    private static void SiftDown(Span<ulong> heap, int i)
    {
        int n = heap.Length;
        ulong item = heap[i];
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= n)
                break;
            if (child + 1 < n && heap[child + 1] > heap[child])
                child++;
            if (heap[child] <= item)
                break;
            heap[i] = heap[child];
            i = child;
        }
        heap[i] = item;
    }

    /// <summary>Sort keys of every candidate with score &gt;= threshold, in position order; returns the count.</summary>
    public static int Collect(ReadOnlySpan<float> s, ReadOnlySpan<int> ids, float threshold, Span<ulong> keys)
    {
        ref float r = ref MemoryMarshal.GetReference(s);
        int n = s.Length, count = 0, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> tv = Vector256.Create(threshold);
            for (; i <= n - 8; i += 8)
            {
                uint mask = Vector256.GreaterThanOrEqual(Vector256.LoadUnsafe(ref r, (nuint)i), tv).ExtractMostSignificantBits();
                while (mask != 0)
                {
                    int j = System.Numerics.BitOperations.TrailingZeroCount(mask);
                    mask &= mask - 1;
                    keys[count++] = SortKey(Unsafe.Add(ref r, i + j), Id(ids, i + j));
                }
            }
        }
        for (; i < n; i++)
        {
            float si = Unsafe.Add(ref r, i);
            if (si >= threshold)
                keys[count++] = SortKey(si, Id(ids, i));
        }
        return count;
    }

    /// <summary>
    /// Length of the nucleus: the shortest prefix of <paramref name="sorted"/> (best first) whose mass reaches
    /// p * total, with weights exp(s - s[first]) in float64. Returns -1 when the prefix never reaches it (the caller
    /// then widens its candidate set, or takes everything).
    /// </summary>
    public static int NucleusLength(ReadOnlySpan<ulong> sorted, double p, double total)
    {
        double s0 = ScoreOf(sorted[0]);
        double target = p * total, cum = 0;
        for (int j = 0; j < sorted.Length; j++)
        {
            cum += Math.Exp(ScoreOf(sorted[j]) - s0);
            if (cum >= target)
                return j + 1;
        }
        return -1;
    }
}
