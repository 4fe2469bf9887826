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

    private const float Ln2Hi = 6.9313812256e-01f; // 0x3f317180
    private const float Ln2Lo = 9.0580006145e-06f; // 0x3717f7d1
    private const float Lg1 = 0.66666662693f; // 0xaaaaaa.0p-24
    private const float Lg2 = 0.40000972152f; // 0xccce13.0p-25
    private const float Lg3 = 0.28498786688f; // 0x91e9ee.0p-25
    private const float Lg4 = 0.24279078841f; // 0xf89e26.0p-26

    /// <summary>
    /// Natural log of a positive normal float (musl's logf, under 1 ulp), built only from correctly rounded
    /// operations so that every backend gets the same bits. Not defined for 0, negatives, subnormals, inf or NaN.
    /// <see cref="GumbelNoise"/> mirrors it op for op in SIMD.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Log(float x)
    {
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
}
