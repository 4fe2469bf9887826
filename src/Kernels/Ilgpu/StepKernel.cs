using ILGPU;

namespace Tilt.Kernels.Ilgpu;

/// <summary>
/// The fused step as one ILGPU kernel: one group per row runs base log-partition, tilted scores, top-k / top-p
/// selection, Gumbel-max, log-probs and KL without leaving the device. The scores and the noise use
/// <see cref="DeviceFloat"/> and <see cref="GumbelNoise"/>, so the token equals the CPU backend's bit for bit.
/// </summary>
/// <remarks>
/// Top-k and top-p are selections of a prefix in "score descending, token id ascending" order, found without sorting:
/// a most-significant-bit-first search over the 64-bit sort key (the same key as the CPU backend), counting keys for
/// top-k and summing float64 weights for top-p. Only the top-p sums can differ from the CPU backend (summation order,
/// ~1e-16 relative), which moves the nucleus boundary only when the cumulative mass lands within that of p.
/// Group size: any power of two up to <see cref="MaxGroupSize"/>.
/// </remarks>
internal static class StepKernel
{
    public const int MaxGroupSize = 256;

    /// <summary>The kernel. Grid: one group per row.</summary>
    public static void Run(
        ArrayView<float> logits,        // [rows, vocab] raw logits
        ArrayView<int> candidateIds,    // [rows, candidates] token ids (unused when shape.Dense)
        ArrayView<float> values,        // [rows, candidates] V per candidate (unused without shape.HasValues)
        ArrayView<RowSettings> settings, // [rows]
        ArrayView<RowOutput> output,    // [rows]
        StepShape shape)
    {
        var sharedF = SharedMemory.Allocate<float>(MaxGroupSize);
        var sharedD = SharedMemory.Allocate<double>(MaxGroupSize);
        var sharedU = SharedMemory.Allocate<ulong>(MaxGroupSize);
        var sharedI = SharedMemory.Allocate<int>(MaxGroupSize);
        var sharedD2 = SharedMemory.Allocate<double>(MaxGroupSize);
        var histI = SharedMemory.Allocate<int>(256);
        var histD = SharedMemory.Allocate<double>(256);
        var pick = SharedMemory.Allocate<int>(2);
        var pickMass = SharedMemory.Allocate<double>(1);
        ref float sharedTokenScore = ref SharedMemory.Allocate<float>();

        int row = Grid.IdxX;
        int tid = Group.IdxX;
        int threads = Group.DimX;
        int vocab = shape.Vocab;
        int c = shape.Candidates;
        long xBase = (long)row * vocab;
        long cBase = (long)row * c;
        RowSettings rs = settings[row];

        // 1. Base model: max, NaN / +inf detection, log-partition at T = 1.
        float m = float.NegativeInfinity;
        int firstNaN = int.MaxValue, firstInf = int.MaxValue;
        for (int i = tid; i < vocab; i += threads)
        {
            float xi = logits[xBase + i];
            if (float.IsNaN(xi))
                firstNaN = Math.Min(firstNaN, i);
            else if (float.IsPositiveInfinity(xi))
                firstInf = Math.Min(firstInf, i);
            else
                m = Math.Max(m, xi);
        }
        m = GroupMax(m, sharedF);
        firstNaN = GroupMin(firstNaN, sharedI);
        firstInf = GroupMin(firstInf, sharedI);
        if (firstNaN != int.MaxValue || firstInf != int.MaxValue || m == float.NegativeInfinity)
        {
            if (tid == 0)
            {
                output[row].Status = firstNaN != int.MaxValue ? RowStatus.LogitsNaN
                    : firstInf != int.MaxValue ? RowStatus.LogitsPositiveInfinity : RowStatus.LogitsAllMasked;
                output[row].Detail = firstNaN != int.MaxValue ? firstNaN : firstInf;
            }
            return;
        }
        double sum = 0;
        for (int i = tid; i < vocab; i += threads)
            sum += DeviceFloat.Exp((double)logits[xBase + i] - m);
        double logZ = m + Math.Log(GroupSum(sum, sharedD));

        // 2. Values: NaN / +inf rejected (-inf masks a candidate).
        bool greedy = rs.Temperature == 0f;
        float t = greedy ? 1f : rs.Temperature;
        bool tilt = shape.HasValues != 0 && !float.IsPositiveInfinity(rs.Beta);
        if (tilt)
        {
            int vNaN = int.MaxValue, vInf = int.MaxValue;
            for (int j = tid; j < c; j += threads)
            {
                float vj = values[cBase + j];
                if (float.IsNaN(vj))
                    vNaN = Math.Min(vNaN, j);
                else if (float.IsPositiveInfinity(vj))
                    vInf = Math.Min(vInf, j);
            }
            vNaN = GroupMin(vNaN, sharedI);
            vInf = GroupMin(vInf, sharedI);
            if (vNaN != int.MaxValue || vInf != int.MaxValue)
            {
                if (tid == 0)
                {
                    output[row].Status = vNaN != int.MaxValue ? RowStatus.ValuesNaN : RowStatus.ValuesPositiveInfinity;
                    output[row].Detail = vNaN != int.MaxValue ? vNaN : vInf;
                }
                return;
            }
        }

        // 3. Scores: the best (score, lowest id) as a sort key; its score is the max.
        ulong bestKey = ulong.MaxValue;
        for (int j = tid; j < c; j += threads)
        {
            float s = Score(logits, candidateIds, values, shape, xBase, cBase, j, t, rs.Beta, tilt, out int id);
            if (s != float.NegativeInfinity)
                bestKey = Math.Min(bestKey, SortKey(s, id));
        }
        bestKey = GroupMinU(bestKey, sharedU);
        float sMax = bestKey == ulong.MaxValue ? float.NegativeInfinity : ScoreOf(bestKey);
        if (sMax == float.NegativeInfinity || float.IsPositiveInfinity(sMax))
        {
            if (tid == 0)
                output[row].Status = sMax == float.NegativeInfinity ? RowStatus.NoFiniteCandidate : RowStatus.ScoreOverflow;
            return;
        }

        if (greedy)
        {
            if (tid == 0)
            {
                int token = (int)(uint)bestKey;
                output[row].Status = RowStatus.Ok;
                output[row].Token = token;
                output[row].BaseLogProb = (float)(logits[xBase + token] - logZ);
                output[row].TiltedLogProb = 0f;
                output[row].Kl = (float)(logZ - logits[xBase + token]);
            }
            return;
        }

        // 4. Filters: survivors are the finite keys <= limit.
        ulong limit = ulong.MaxValue;
        bool topK = rs.TopK > 0 && rs.TopK < c;
        if (topK)
            limit = KthSmallestKey(logits, candidateIds, values, shape, xBase, cBase, t, rs.Beta, tilt, rs.TopK, histI, pick);
        if (rs.TopP < 1f)
        {
            double total = 0;
            for (int j = tid; j < c; j += threads)
            {
                float s = Score(logits, candidateIds, values, shape, xBase, cBase, j, t, rs.Beta, tilt, out int id);
                if (s != float.NegativeInfinity && SortKey(s, id) <= limit)
                    total += DeviceFloat.Exp((double)s - sMax);
            }
            total = GroupSum(total, sharedD);
            ulong nucleus = NucleusKey(logits, candidateIds, values, shape, xBase, cBase, t, rs.Beta, tilt, limit, sMax,
                rs.TopP * total, histD, pick, pickMass);
            limit = Math.Min(limit, nucleus);
        }

        // 5. Gumbel-max over the survivors: max of (perturbed score, then lowest id) packed in one 64-bit key.
        ulong winner = 0;
        for (int j = tid; j < c; j += threads)
        {
            float s = Score(logits, candidateIds, values, shape, xBase, cBase, j, t, rs.Beta, tilt, out int id);
            if (s == float.NegativeInfinity || SortKey(s, id) > limit)
                continue;
            GumbelNoise.BlockDraw(rs.Row, rs.Step, rs.Request, rs.SeedLo, rs.SeedHi, id / GumbelNoise.BlockSize, vocab,
                out float first, out int firstOffset);
            float v = DeviceFloat.Add(s, GumbelNoise.FromBlock(rs.Row, rs.Step, rs.Request, rs.SeedLo, rs.SeedHi, id, first, firstOffset));
            winner = Math.Max(winner, ((ulong)Ordered(v) << 32) | (uint)~id);
        }
        winner = GroupMaxU(winner, sharedU);
        int tok = (int)~(uint)winner;

        // 6. Log-probs and KL over the survivors.
        double z = 0, a = 0;
        for (int j = tid; j < c; j += threads)
        {
            float s = Score(logits, candidateIds, values, shape, xBase, cBase, j, t, rs.Beta, tilt, out int id);
            if (s == float.NegativeInfinity || SortKey(s, id) > limit)
                continue;
            if (id == tok)
                sharedTokenScore = s;
            double wgt = DeviceFloat.Exp((double)s - sMax);
            z += wgt;
            a += wgt * ((double)s - logits[xBase + id]);
        }
        z = GroupSum(z, sharedD);
        if (shape.WantKl != 0)
            a = GroupSum(a, sharedD2);
        if (tid == 0)
        {
            double logZs = sMax + Math.Log(z);
            output[row].Status = RowStatus.Ok;
            output[row].Token = tok;
            output[row].BaseLogProb = (float)(logits[xBase + tok] - logZ);
            output[row].TiltedLogProb = (float)(sharedTokenScore - logZs);
            double kl = a / z + logZ - logZs;
            output[row].Kl = shape.WantKl != 0 ? (float)Math.Max(0.0, kl) : 0f;
        }
    }

    /// <summary>s = x[id] / T + V / beta, with the exact operations of the CPU backend.</summary>
    private static float Score(ArrayView<float> logits, ArrayView<int> candidateIds, ArrayView<float> values, StepShape shape,
        long xBase, long cBase, int j, float t, float beta, bool tilt, out int id)
    {
        id = shape.Dense != 0 ? j : candidateIds[cBase + j];
        float s = DeviceFloat.Div(logits[xBase + id], t);
        if (tilt)
            s = DeviceFloat.Add(s, DeviceFloat.Div(values[cBase + j], beta));
        return s;
    }

    // Digit positions of the 64-bit sort key, most significant first: four bytes of the (complemented, ordered) score,
    // then the bytes of the token id that can be non-zero.
    private static int DigitShift(int level, int idBits, out bool skip)
    {
        int shift = 56 - 8 * level;
        skip = shift < 32 && shift >= idBits;
        return shift;
    }

    /// <summary>
    /// The k-th smallest sort key among the finite candidates (1 &lt;= k &lt; candidates), or all-ones when there are
    /// fewer: a radix select, one 256-bin histogram pass per byte of the key (at most 7 passes).
    /// </summary>
    private static ulong KthSmallestKey(ArrayView<float> logits, ArrayView<int> candidateIds, ArrayView<float> values, StepShape shape,
        long xBase, long cBase, float t, float beta, bool tilt, int k, ArrayView<int> hist, ArrayView<int> pick)
    {
        int tid = Group.IdxX, threads = Group.DimX, c = shape.Candidates;
        ulong prefix = 0, mask = 0;
        int below = 0;
        for (int level = 0; level < 8; level++)
        {
            int shift = DigitShift(level, shape.IdBits, out bool skip);
            if (skip)
                continue;
            for (int b = tid; b < 256; b += threads)
                hist[b] = 0;
            Group.Barrier();
            for (int j = tid; j < c; j += threads)
            {
                float s = Score(logits, candidateIds, values, shape, xBase, cBase, j, t, beta, tilt, out int id);
                if (s == float.NegativeInfinity)
                    continue;
                ulong key = SortKey(s, id);
                if ((key & mask) == prefix)
                    Atomic.Add(ref hist[(int)((key >> shift) & 255)], 1);
            }
            Group.Barrier();
            if (tid == 0)
            {
                int cum = below, bin = 0;
                for (; bin < 255; bin++)
                {
                    if (cum + hist[bin] >= k)
                        break;
                    cum += hist[bin];
                }
                if (cum + hist[bin] < k)
                    bin = 256; // fewer than k finite candidates
                pick[0] = bin;
                pick[1] = cum;
            }
            Group.Barrier();
            int chosen = pick[0];
            below = pick[1];
            Group.Barrier();
            if (chosen == 256)
                return ulong.MaxValue;
            prefix |= (ulong)chosen << shift;
            mask |= 255UL << shift;
        }
        return prefix;
    }

    /// <summary>
    /// The smallest sort key whose cumulative weight exp(s - sMax) over finite keys &lt;= limit reaches target, by the
    /// same radix descent with float64 mass histograms; all-ones (take everything) when the total falls short.
    /// </summary>
    private static ulong NucleusKey(ArrayView<float> logits, ArrayView<int> candidateIds, ArrayView<float> values, StepShape shape,
        long xBase, long cBase, float t, float beta, bool tilt, ulong limit, float sMax, double target,
        ArrayView<double> hist, ArrayView<int> pick, ArrayView<double> pickMass)
    {
        int tid = Group.IdxX, threads = Group.DimX, c = shape.Candidates;
        ulong prefix = 0, mask = 0;
        double below = 0;
        for (int level = 0; level < 8; level++)
        {
            int shift = DigitShift(level, shape.IdBits, out bool skip);
            if (skip)
                continue;
            for (int b = tid; b < 256; b += threads)
                hist[b] = 0;
            Group.Barrier();
            for (int j = tid; j < c; j += threads)
            {
                float s = Score(logits, candidateIds, values, shape, xBase, cBase, j, t, beta, tilt, out int id);
                if (s == float.NegativeInfinity)
                    continue;
                ulong key = SortKey(s, id);
                if (key <= limit && (key & mask) == prefix)
                    Atomic.Add(ref hist[(int)((key >> shift) & 255)], DeviceFloat.Exp((double)s - sMax));
            }
            Group.Barrier();
            if (tid == 0)
            {
                double cum = below;
                int bin = 0, last = -1;
                for (; bin < 256; bin++)
                {
                    if (hist[bin] > 0)
                        last = bin;
                    if (cum + hist[bin] >= target)
                        break;
                    cum += hist[bin];
                }
                if (bin == 256)
                {
                    // Short of the target: at the top level the whole row is (take everything); below it, only
                    // rounding between two summation orders of the same bin is, so its last non-empty sub-bin closes it.
                    bin = level == 0 ? 256 : last;
                    cum = below;
                    for (int b = 0; b < last && level > 0; b++)
                        cum += hist[b];
                }
                pick[0] = bin;
                pickMass[0] = cum;
            }
            Group.Barrier();
            int chosen = pick[0];
            below = pickMass[0];
            Group.Barrier();
            if (chosen == 256 || chosen < 0)
                return ulong.MaxValue;
            prefix |= (ulong)chosen << shift;
            mask |= 255UL << shift;
        }
        return prefix;
    }

    /// <summary>Order-preserving map of a float onto uint (-0 folded onto +0).</summary>
    public static uint Ordered(float f)
    {
        uint bits = Interop.FloatAsInt(f == 0f ? 0f : f);
        return (bits & 0x8000_0000u) != 0 ? ~bits : bits | 0x8000_0000u;
    }

    /// <summary>Same key as the CPU backend: ascending = score descending, then token id ascending.</summary>
    public static ulong SortKey(float s, int id) => ((ulong)~Ordered(s) << 32) | (uint)id;

    public static float ScoreOf(ulong key)
    {
        uint ordered = ~(uint)(key >> 32);
        uint bits = (ordered & 0x8000_0000u) != 0 ? ordered & 0x7FFF_FFFFu : ~ordered;
        return Interop.IntAsFloat(bits);
    }

    // Tree reductions over the group in shared memory. Every thread gets the result; the trailing barrier lets the
    // next reduction reuse the same shared array. One definition, specialized per operator struct; the fixed tree
    // order keeps sums bit-identical from run to run.
    private static T GroupReduce<T, TOp>(T v, ArrayView<T> sh)
        where T : unmanaged
        where TOp : struct, IGroupOp<T>
    {
        int tid = Group.IdxX;
        sh[tid] = v;
        Group.Barrier();
        for (int s = Group.DimX >> 1; s > 0; s >>= 1)
        {
            if (tid < s)
                sh[tid] = default(TOp).Apply(sh[tid], sh[tid + s]);
            Group.Barrier();
        }
        T r = sh[0];
        Group.Barrier();
        return r;
    }

    private static float GroupMax(float v, ArrayView<float> sh) => GroupReduce<float, MaxF>(v, sh);
    private static int GroupMin(int v, ArrayView<int> sh) => GroupReduce<int, MinI>(v, sh);
    private static double GroupSum(double v, ArrayView<double> sh) => GroupReduce<double, SumD>(v, sh);
    private static ulong GroupMinU(ulong v, ArrayView<ulong> sh) => GroupReduce<ulong, MinU>(v, sh);
    private static ulong GroupMaxU(ulong v, ArrayView<ulong> sh) => GroupReduce<ulong, MaxU>(v, sh);

    private interface IGroupOp<T>
    {
        T Apply(T a, T b);
    }

    private readonly struct MaxF : IGroupOp<float> { public float Apply(float a, float b) => Math.Max(a, b); }
    private readonly struct MinI : IGroupOp<int> { public int Apply(int a, int b) => Math.Min(a, b); }
    private readonly struct SumD : IGroupOp<double> { public double Apply(double a, double b) => a + b; }
    private readonly struct MinU : IGroupOp<ulong> { public ulong Apply(ulong a, ulong b) => Math.Min(a, b); }
    private readonly struct MaxU : IGroupOp<ulong> { public ulong Apply(ulong a, ulong b) => Math.Max(a, b); }
}
