using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Tilt.Kernels;

/// <summary>
/// Philox4x32-10 (Salmon et al., SC'11; Random123's philox4x32 with 10 rounds), the counter-based generator behind
/// every random draw of the kernels. One call maps (counter[4], key[2]) to four independent 32-bit words.
/// </summary>
/// <remarks>
/// Layout of the column words of token id c in stream <see cref="RngKey"/> k (the block draws of
/// <see cref="GumbelNoise"/> use counter0 = 2^31 | block, which no column uses):
/// key = (lo32(k.Seed), hi32(k.Seed)); counter = (Counter0(c), k.Row, k.Step, k.Request); word = Word(c).
/// Counter0/Word tile the columns in blocks of 32: the 8 consecutive counters of a block give 4 words each, and
/// word w of counter 8b+j belongs to column 32b + 8w + j. One 8-lane SIMD Philox call therefore yields 32
/// consecutive columns in 4 plain vectors (no shuffles), while a GPU thread can still compute any single column.
/// The layout is part of the sampling contract: changing it changes every sampled token.
/// </remarks>
public static class Philox
{
    internal const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>First counter word for token id <paramref name="column"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Counter0(int column) => (uint)(((column >> 5) << 3) | (column & 7));

    /// <summary>Which of the four output words belongs to token id <paramref name="column"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Word(int column) => (column >> 3) & 3;

    /// <summary>Philox4x32-10 on one counter. Scalar reference; also compiled into the ILGPU kernels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1,
        out uint r0, out uint r1, out uint r2, out uint r3)
    {
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0;
            uint n1 = (uint)p1;
            uint n2 = (uint)(p0 >> 32) ^ c3 ^ k1;
            uint n3 = (uint)p0;
            c0 = n0; c1 = n1; c2 = n2; c3 = n3;
            k0 += W0;
            k1 += W1;
        }
        r0 = c0; r1 = c1; r2 = c2; r3 = c3;
    }

    /// <summary>The 32-bit word that drives token id <paramref name="column"/> in stream <paramref name="key"/>.</summary>
    public static uint Bits(in RngKey key, int column)
    {
        Block(Counter0(column), key.Row, key.Step, key.Request, (uint)key.Seed, (uint)(key.Seed >> 32),
            out uint r0, out uint r1, out uint r2, out uint r3);
        return Word(column) switch { 0 => r0, 1 => r1, 2 => r2, _ => r3 };
    }

    /// <summary>True when <see cref="Block32"/> runs on SIMD hardware (AVX2); otherwise callers use the scalar path.</summary>
    internal static bool IsVectorized => Avx2.IsSupported;

    /// <summary>
    /// Words for the 32 columns [<paramref name="firstColumn"/>, +32), firstColumn a multiple of 32:
    /// w0 holds columns +0..7, w1 +8..15, w2 +16..23, w3 +24..31. Requires <see cref="IsVectorized"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Block32(in RngKey key, int firstColumn,
        out Vector256<uint> w0, out Vector256<uint> w1, out Vector256<uint> w2, out Vector256<uint> w3) =>
        Block8(key, Vector256.Create((uint)(firstColumn >> 2)) + Vector256.Create(0u, 1, 2, 3, 4, 5, 6, 7), out w0, out w1, out w2, out w3);

    /// <summary>Philox4x32-10 on 8 counters (c0 per lane; c1..c3 from the key's Row, Step, Request). Requires <see cref="IsVectorized"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Block8(in RngKey key, Vector256<uint> c0,
        out Vector256<uint> w0, out Vector256<uint> w1, out Vector256<uint> w2, out Vector256<uint> w3)
    {
        Vector256<uint> c1 = Vector256.Create(key.Row);
        Vector256<uint> c2 = Vector256.Create(key.Step);
        Vector256<uint> c3 = Vector256.Create(key.Request);
        uint k0 = (uint)key.Seed, k1 = (uint)(key.Seed >> 32);
        Vector256<uint> m0 = Vector256.Create(M0), m1 = Vector256.Create(M1);
        for (int round = 0; round < 10; round++)
        {
            MulHiLo(m0, c0, out Vector256<uint> hi0, out Vector256<uint> lo0);
            MulHiLo(m1, c2, out Vector256<uint> hi1, out Vector256<uint> lo1);
            c0 = hi1 ^ c1 ^ Vector256.Create(k0);
            c1 = lo1;
            c2 = hi0 ^ c3 ^ Vector256.Create(k1);
            c3 = lo0;
            k0 += W0;
            k1 += W1;
        }
        w0 = c0; w1 = c1; w2 = c2; w3 = c3;
    }

    // vpmuludq multiplies only the even 32-bit lanes into 64-bit products, so the odd lanes take a second
    // multiply after a 32-bit shift; two blends put the halves back in lane order.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MulHiLo(Vector256<uint> m, Vector256<uint> c, out Vector256<uint> hi, out Vector256<uint> lo)
    {
        Vector256<ulong> even = Avx2.Multiply(c, m);
        Vector256<ulong> odd = Avx2.Multiply(Avx2.ShiftRightLogical(c.AsUInt64(), 32).AsUInt32(), m);
        lo = Avx2.Blend(even.AsUInt32(), Avx2.ShiftLeftLogical(odd, 32).AsUInt32(), 0b1010_1010);
        hi = Avx2.Blend(Avx2.ShiftRightLogical(even, 32).AsUInt32(), odd.AsUInt32(), 0b1010_1010);
    }
}
