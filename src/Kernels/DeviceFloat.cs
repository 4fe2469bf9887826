using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Tilt.Kernels;

/// <summary>
/// IEEE-754 float32 arithmetic with round-to-nearest and no contraction, identical on .NET and on CUDA.
/// </summary>
/// <remarks>
/// ILGPU emits plain <c>mul.f32</c>/<c>add.f32</c>, which ptxas may fuse into an FMA (one rounding instead of
/// two), so the same C# would round differently on a GPU. The <c>.rn</c> forms are never fused. RyuJIT never
/// fuses a separate multiply and add, so on the CPU the plain operators already have these semantics. The noise
/// and the scores that decide the sampled token go through these helpers; that makes the sampled token a pure
/// function of the inputs on every backend (no near-tie exceptions from the noise path).
/// On the CPU (outside kernels) <see cref="CudaAsm.IsSupported"/> is a JIT-time constant false.
/// </remarks>
internal static class DeviceFloat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Mul(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a * b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Add(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("add.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a + b;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sub(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("sub.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a - b;
    }

    /// <summary>IEEE division (ILGPU's default math mode already emits div.rn.f32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Div(float a, float b) => a / b;

    // Mirrors the C# below op for op (operands of the commutative add/mul may be swapped: same bits).
    internal const string LogPtx =
        "{\n\t.reg .b32 lx, lk;\n\t.reg .f32 lm, lf, ls, lz, lw, lr, lh, ld, la, lb;\n\t" +
        "mov.b32 lx, %1;\n\tadd.u32 lx, lx, 0x004AFB0D;\n\tshr.u32 lk, lx, 23;\n\tsub.s32 lk, lk, 127;\n\t" +
        "and.b32 lx, lx, 0x007FFFFF;\n\tadd.u32 lx, lx, 0x3F3504F3;\n\tmov.b32 lm, lx;\n\t" +
        "sub.rn.f32 lf, lm, 0f3F800000;\n\tadd.rn.f32 la, lf, 0f40000000;\n\tdiv.rn.f32 ls, lf, la;\n\t" +
        "mul.rn.f32 lz, ls, ls;\n\tmul.rn.f32 lw, lz, lz;\n\t" +
        "mul.rn.f32 la, lw, 0f3E789E26;\n\tadd.rn.f32 la, la, 0f3ECCCE13;\n\tmul.rn.f32 la, lw, la;\n\t" +
        "mul.rn.f32 lb, lw, 0f3E91E9EE;\n\tadd.rn.f32 lb, lb, 0f3F2AAAAA;\n\tmul.rn.f32 lb, lz, lb;\n\t" +
        "add.rn.f32 lr, lb, la;\n\tmul.rn.f32 lh, lf, 0f3F000000;\n\tmul.rn.f32 lh, lh, lf;\n\t" +
        "cvt.rn.f32.s32 ld, lk;\n\tadd.rn.f32 la, lh, lr;\n\tmul.rn.f32 la, ls, la;\n\t" +
        "mul.rn.f32 lb, ld, 0f3717F7D1;\n\tadd.rn.f32 la, la, lb;\n\tsub.rn.f32 la, la, lh;\n\tadd.rn.f32 la, la, lf;\n\t" +
        "mul.rn.f32 lb, ld, 0f3F317180;\n\tadd.rn.f32 %0, la, lb;\n\t}";

    internal const float Ln2Hi = 6.9313812256e-01f; // 0x3f317180
    internal const float Ln2Lo = 9.0580006145e-06f; // 0x3717f7d1
    internal const float Lg1 = 0.66666662693f; // 0xaaaaaa.0p-24
    internal const float Lg2 = 0.40000972152f; // 0xccce13.0p-25
    internal const float Lg3 = 0.28498786688f; // 0x91e9ee.0p-25
    internal const float Lg4 = 0.24279078841f; // 0xf89e26.0p-26

    /// <summary>
    /// Natural log of a positive normal float (musl's logf, under 1 ulp), built only from correctly rounded
    /// operations so that every backend gets the same bits. Not defined for 0, negatives, subnormals, inf or NaN.
    /// <see cref="GumbelNoise"/> mirrors it op for op in SIMD.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Log(float x)
    {
        if (CudaAsm.IsSupported)
        {
            // The same operations in one asm block: one output keeps ILGPU from spilling every intermediate of a
            // separate Emit to local memory.
            CudaAsm.Emit(LogPtx, out float logX, x);
            return logX;
        }
        uint ix = Interop.FloatAsInt(x);
        ix += 0x3f800000u - 0x3f3504f3u; // shift [sqrt(1/2), sqrt(2)) onto one exponent
        int k = (int)(ix >> 23) - 0x7f;
        ix = (ix & 0x007fffffu) + 0x3f3504f3u;
        float f = Sub(Interop.IntAsFloat(ix), 1f);
        float s = Div(f, Add(2f, f));
        float z = Mul(s, s);
        float w = Mul(z, z);
        float t1 = Mul(w, Add(Lg2, Mul(w, Lg4)));
        float t2 = Mul(z, Add(Lg1, Mul(w, Lg3)));
        float r = Add(t2, t1);
        float hfsq = Mul(Mul(0.5f, f), f);
        float dk = k;
        return Add(Add(Sub(Add(Mul(s, Add(hfsq, r)), Mul(dk, Ln2Lo)), hfsq), f), Mul(dk, Ln2Hi));
    }

    /// <summary>
    /// e^x in float64 from + - * only (Cody-Waite reduction, degree-13 Taylor: relative error ~1e-16), for the kernels'
    /// partition sums. ILGPU's own double exp without libdevice is a 53-step CORDIC loop, far too slow per element.
    /// Returns 0 below -708 (the sums do not need subnormals) and +inf above 709.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Exp(double x)
    {
        if (!(x > -708.0))
            return 0.0; // also -inf and NaN
        if (x > 709.0)
            return double.PositiveInfinity;
        double t = x * 1.4426950408889634;
        long n = (long)(t + (t >= 0 ? 0.5 : -0.5));
        double r = x - n * 0.6931471803691238 - n * 1.9082149292705877e-10;
        double p = 1.0 / 6227020800.0;
        p = p * r + 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        return p * Interop.IntAsFloat((ulong)(n + 1023) << 52);
    }
}
