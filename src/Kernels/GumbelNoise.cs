using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Tilt.Kernels;

/// <summary>
/// Standard Gumbel noise per token id, bit-identical on every backend, drawn block by block so that the samplers can
/// skip whole blocks of tokens that cannot win without drawing their noise.
/// </summary>
/// <remarks>
/// <para>g_j = -log E_j with E_j iid Exp(1) is standard Gumbel, and argmax_j (s_j + g_j) is a draw from softmax(s)
/// (equivalently, the first arrival of an exponential race with rates e^{s_j}). The E_j of the (at most) 32 tokens of a block b = j / 32 are drawn top-down, which gives exactly the same joint
/// distribution: the block's first arrival A_b = E0 / m (the minimum of m iid Exp(1), m = tokens in the block) and
/// its position J_b (uniform), from one Philox call at counter (2^31 | b, Row, Step, Request); every other token of
/// the block arrives at A_b + E_j (memorylessness), E_j from its own Philox word (see <see cref="Philox"/>).
/// So g_j = -log(A_b) for j = J_b, else -log(A_b + E_j).</para>
/// <para>Every token of block b has g_j &lt;= G_b = -log(A_b), so a block whose best score plus G_b is below the best
/// perturbed score found so far cannot hold the winner: one Philox call per 32 tokens decides that, which is what
/// makes full-vocabulary sampling cost about a pass over the logits.</para>
/// <para>E = -log(u) with u = ((bits &gt;&gt; 9) + 1/2) 2^-23, a grid strictly inside (0, 1). All arithmetic is
/// <see cref="DeviceFloat"/>'s correctly rounded operations; dividing by m = 32 is exact, so the SIMD path's multiply
/// by 1/32 gives the same bits.</para>
/// </remarks>
public static class GumbelNoise
{
    /// <summary>Strict upper bound on every noise value: -log(2^-24 / 32) = 20.1; the margin covers rounding.</summary>
    public const float UpperBound = 20.25f;

    /// <summary>Tokens per noise block.</summary>
    public const int BlockSize = 32;

    private const float Grid = 1.1920928955078125e-07f; // 2^-23

    /// <summary>E = -log(u), an Exp(1) draw from one Philox word.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Exponential(uint bits) =>
        -DeviceFloat.Log(DeviceFloat.Mul(DeviceFloat.Add((int)(bits >> 9), 0.5f), Grid));

    /// <summary>The block draw of block b of a row of <paramref name="columns"/> tokens: first arrival and its offset.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void BlockDraw(uint row, uint step, uint request, uint seedLo, uint seedHi, int block, int columns,
        out float first, out int firstOffset)
    {
        int m = Math.Min(BlockSize, columns - block * BlockSize);
        Philox.Block(0x8000_0000u | (uint)block, row, step, request, seedLo, seedHi, out uint r0, out uint r1, out _, out _);
        first = DeviceFloat.Div(Exponential(r0), m);
        firstOffset = (int)(((ulong)r1 * (uint)m) >> 32);
    }

    /// <summary>Noise of one token given its block's draw. Also compiled into the ILGPU kernels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FromBlock(uint row, uint step, uint request, uint seedLo, uint seedHi, int column, float first, int firstOffset)
    {
        if ((column & (BlockSize - 1)) == firstOffset)
            return -DeviceFloat.Log(first);
        Philox.Block(Philox.Counter0(column), row, step, request, seedLo, seedHi, out uint r0, out uint r1, out uint r2, out uint r3);
        int w = Philox.Word(column);
        uint bits = w == 0 ? r0 : w == 1 ? r1 : w == 2 ? r2 : r3;
        return -DeviceFloat.Log(DeviceFloat.Add(first, Exponential(bits)));
    }

    /// <summary>Noise of token <paramref name="column"/> in a row of <paramref name="columns"/> tokens (the row length
    /// fixes the size of the last block).</summary>
    public static float Sample(in RngKey key, int column, int columns)
    {
        if ((uint)column >= (uint)columns)
            throw new ArgumentOutOfRangeException(nameof(column), $"column {column} is outside [0, {columns}).");
        uint lo = (uint)key.Seed, hi = (uint)(key.Seed >> 32);
        BlockDraw(key.Row, key.Step, key.Request, lo, hi, column / BlockSize, columns, out float first, out int offset);
        return FromBlock(key.Row, key.Step, key.Request, lo, hi, column, first, offset);
    }

    /// <summary>
    /// Noise of token <paramref name="column"/> in a row of unbounded length (every block full), e.g. for a choice among
    /// K items whose count is not fixed in advance. Independent standard Gumbel over columns, like the 3-argument form.
    /// </summary>
    public static float Sample(in RngKey key, int column) => Sample(key, column, int.MaxValue);

    /// <summary>
    /// Block draws of 8 consecutive FULL blocks [firstBlock, +8) at once: first arrivals A and offsets J, plus the
    /// bound G = -log A. SIMD twin of <see cref="BlockDraw"/> for m = 32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void BlockDraw8(in RngKey key, int firstBlock, out Vector256<float> first, out Vector256<uint> offset, out Vector256<float> bound)
    {
        Philox.Block8(key, Vector256.Create(0x8000_0000u | (uint)firstBlock) + Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7),
            out Vector256<uint> r0, out Vector256<uint> r1, out _, out _);
        first = Exponential(r0) * Vector256.Create(1f / BlockSize);
        offset = r1 >> 27;
        bound = -Log(first);
    }

    /// <summary>
    /// Noise of the 32 tokens of one full block [firstColumn, +32) given its draw: g0 holds columns +0..7, g1 +8..15,
    /// g2 +16..23, g3 +24..31. SIMD twin of <see cref="FromBlock"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Block32(in RngKey key, int firstColumn, float first, uint firstOffset,
        out Vector256<float> g0, out Vector256<float> g1, out Vector256<float> g2, out Vector256<float> g3)
    {
        Philox.Block32(key, firstColumn, out var w0, out var w1, out var w2, out var w3);
        Vector256<float> a = Vector256.Create(first);
        Vector256<uint> lane = Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7), j = Vector256.Create(firstOffset);
        g0 = -Log(Vector256.ConditionalSelect(Vector256.Equals(lane, j).AsSingle(), a, a + Exponential(w0)));
        g1 = -Log(Vector256.ConditionalSelect(Vector256.Equals(lane + Vector256.Create(8u), j).AsSingle(), a, a + Exponential(w1)));
        g2 = -Log(Vector256.ConditionalSelect(Vector256.Equals(lane + Vector256.Create(16u), j).AsSingle(), a, a + Exponential(w2)));
        g3 = -Log(Vector256.ConditionalSelect(Vector256.Equals(lane + Vector256.Create(24u), j).AsSingle(), a, a + Exponential(w3)));
    }

    /// <summary>SIMD twin of <see cref="Exponential(uint)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Exponential(Vector256<uint> bits) =>
        -Log((Vector256.ConvertToSingle((bits >> 9).AsInt32()) + Vector256.Create(0.5f)) * Vector256.Create(Grid));

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
        Vector256<float> t1 = w * (Vector256.Create(DeviceFloat.Lg2) + w * Vector256.Create(DeviceFloat.Lg4));
        Vector256<float> t2 = z * (Vector256.Create(DeviceFloat.Lg1) + w * Vector256.Create(DeviceFloat.Lg3));
        Vector256<float> r = t2 + t1;
        Vector256<float> hfsq = Vector256.Create(0.5f) * f * f;
        Vector256<float> dk = Vector256.ConvertToSingle(k);
        return s * (hfsq + r) + dk * Vector256.Create(DeviceFloat.Ln2Lo) - hfsq + f + dk * Vector256.Create(DeviceFloat.Ln2Hi);
    }
}
