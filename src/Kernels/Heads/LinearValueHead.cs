using System.Numerics.Tensors;

namespace Tilt.Kernels;

/// <summary>V = h . w + b.</summary>
public sealed class LinearValueHead : ValueHead
{
    private readonly float[] _weights;

    /// <param name="weights">[d] (copied).</param>
    /// <param name="bias">b.</param>
    public LinearValueHead(ReadOnlySpan<float> weights, float bias) : base(weights.Length)
    {
        _weights = weights.ToArray();
        if (!float.IsFinite(TensorPrimitives.Sum(_weights)) || !float.IsFinite(bias))
            throw new ArgumentException("Value head weights and bias must be finite.", nameof(weights));
        Bias = bias;
    }

    /// <summary>[d].</summary>
    public ReadOnlySpan<float> Weights => _weights;

    public float Bias { get; }

    internal override long CostPerRow => InputSize;

    internal override void ScoreRows(ReadOnlySpan<float> hidden, int first, int count, Span<float> values)
    {
        int d = InputSize;
        for (int r = first; r < first + count; r++)
            values[r] = TensorPrimitives.Dot(hidden.Slice(r * d, d), _weights) + Bias;
    }
}
