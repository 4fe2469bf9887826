using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Tilt.Kernels;

/// <summary>Activation of <see cref="MlpValueHead"/>.</summary>
public enum HeadActivation
{
    /// <summary>max(0, x).</summary>
    Relu,

    /// <summary>x * Phi(x), with erf from Abramowitz-Stegun 7.1.26 (|error| &lt; 1.5e-7), PyTorch's default GELU.</summary>
    Gelu,
}

/// <summary>
/// Two-layer head V = w2 . act(W1 h + b1) + b2 (d -> hidden units -> 1), for when a linear head is too weak.
/// </summary>
public sealed class MlpValueHead : ValueHead
{
    private readonly float[] _w1;
    private readonly float[] _b1;
    private readonly float[] _w2;

    /// <param name="w1">[hiddenUnits, d] row-major: row j holds the input weights of hidden unit j (copied).</param>
    /// <param name="b1">[hiddenUnits].</param>
    /// <param name="w2">[hiddenUnits].</param>
    /// <param name="b2">Output bias.</param>
    /// <param name="activation">Defaults to ReLU.</param>
    public MlpValueHead(ReadOnlySpan<float> w1, ReadOnlySpan<float> b1, ReadOnlySpan<float> w2, float b2,
        HeadActivation activation = HeadActivation.Relu)
        : base(b1.Length == 0 ? 0 : w1.Length / b1.Length)
    {
        if (b1.Length == 0 || w1.Length != b1.Length * InputSize || w2.Length != b1.Length)
            throw new ArgumentException($"Shapes do not agree: w1 [{b1.Length}, d] needs {b1.Length} * d values (got {w1.Length}), w2 [{b1.Length}] (got {w2.Length}).", nameof(w1));
        _w1 = w1.ToArray();
        _b1 = b1.ToArray();
        _w2 = w2.ToArray();
        B2 = b2;
        Activation = activation;
        foreach (float f in _w1.Concat(_b1).Concat(_w2).Append(b2))
            if (!float.IsFinite(f))
                throw new ArgumentException("Value head weights and biases must be finite.", nameof(w1));
    }

    public int HiddenUnits => _b1.Length;
    public ReadOnlySpan<float> W1 => _w1;
    public ReadOnlySpan<float> B1 => _b1;
    public ReadOnlySpan<float> W2 => _w2;
    public float B2 { get; }
    public HeadActivation Activation { get; }

    internal override long CostPerRow => (long)InputSize * HiddenUnits;

    /// <summary>The activation as the ILGPU kernel computes it (scalar, no System.Numerics types; the exp is
    /// <see cref="DeviceFloat.Exp"/> because ILGPU's own exp without libdevice is a slow CORDIC loop).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Activate(float x, int activation) => Activate(x, activation, device: true);

    /// <summary>
    /// The activation; on the CPU (device = false) the exp is MathF.Exp, several times faster than the float64
    /// polynomial for the one exp per unit and row. The two differ by ~1e-7 relative.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Activate(float x, int activation, bool device)
    {
        if (activation == (int)HeadActivation.Relu)
            return x > 0f ? x : 0f;
        // erf(|z|) = 1 - poly(t) e^{-z^2}, t = 1 / (1 + p |z|)  (Abramowitz-Stegun 7.1.26)
        float z = Math.Abs(x) * 0.70710678118654752f;
        float t = 1f / (1f + 0.3275911f * z);
        float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
        float erf = 1f - poly * (device ? (float)DeviceFloat.Exp(-z * z) : MathF.Exp(-z * z));
        return 0.5f * x * (1f + (x < 0f ? -erf : erf));
    }

    // Four rows at a time share each load of a W1 row, which is the bulk of the traffic (hiddenUnits * d floats).
    internal override void ScoreRows(ReadOnlySpan<float> hidden, int first, int count, Span<float> values)
    {
        int d = InputSize, units = HiddenUnits, act = (int)Activation;
        ref float w1 = ref MemoryMarshal.GetArrayDataReference(_w1);
        ref float h = ref MemoryMarshal.GetReference(hidden);
        int r = first, end = first + count;
        for (; r + 4 <= end; r += 4)
        {
            float v0 = B2, v1 = B2, v2 = B2, v3 = B2;
            for (int j = 0; j < units; j++)
            {
                ref float wj = ref Unsafe.Add(ref w1, (nint)j * d);
                Dot4(ref wj, ref Unsafe.Add(ref h, (nint)r * d), d, out float a0, out float a1, out float a2, out float a3);
                float b = _b1[j], w2 = _w2[j];
                v0 += w2 * Activate(a0 + b, act, false);
                v1 += w2 * Activate(a1 + b, act, false);
                v2 += w2 * Activate(a2 + b, act, false);
                v3 += w2 * Activate(a3 + b, act, false);
            }
            values[r] = v0; values[r + 1] = v1; values[r + 2] = v2; values[r + 3] = v3;
        }
        for (; r < end; r++)
        {
            float v = B2;
            var hr = hidden.Slice(r * d, d);
            for (int j = 0; j < units; j++)
                v += _w2[j] * Activate(System.Numerics.Tensors.TensorPrimitives.Dot(_w1.AsSpan(j * d, d), hr) + _b1[j], act, false);
            values[r] = v;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4(ref float w, ref float h0, int d, out float a0, out float a1, out float a2, out float a3)
    {
        ref float h1 = ref Unsafe.Add(ref h0, d);
        ref float h2 = ref Unsafe.Add(ref h0, 2 * d);
        ref float h3 = ref Unsafe.Add(ref h0, 3 * d);
        int i = 0;
        a0 = a1 = a2 = a3 = 0f;
        if (Vector256.IsHardwareAccelerated && d >= 8)
        {
            Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            for (; i <= d - 8; i += 8)
            {
                Vector256<float> wv = Vector256.LoadUnsafe(ref w, (nuint)i);
                s0 = Vector256.FusedMultiplyAdd(wv, Vector256.LoadUnsafe(ref h0, (nuint)i), s0);
                s1 = Vector256.FusedMultiplyAdd(wv, Vector256.LoadUnsafe(ref h1, (nuint)i), s1);
                s2 = Vector256.FusedMultiplyAdd(wv, Vector256.LoadUnsafe(ref h2, (nuint)i), s2);
                s3 = Vector256.FusedMultiplyAdd(wv, Vector256.LoadUnsafe(ref h3, (nuint)i), s3);
            }
            a0 = Vector256.Sum(s0); a1 = Vector256.Sum(s1); a2 = Vector256.Sum(s2); a3 = Vector256.Sum(s3);
        }
        for (; i < d; i++)
        {
            float wi = Unsafe.Add(ref w, i);
            a0 += wi * Unsafe.Add(ref h0, i);
            a1 += wi * Unsafe.Add(ref h1, i);
            a2 += wi * Unsafe.Add(ref h2, i);
            a3 += wi * Unsafe.Add(ref h3, i);
        }
    }
}
