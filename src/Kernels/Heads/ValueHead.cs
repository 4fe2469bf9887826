namespace Tilt.Kernels;

/// <summary>
/// A value head: V[k] = f(h[k, :]) for a batch of final hidden states h [rows, d] (docs/math.md [M13]; trained as in
/// [M16]/[M17]). The weights are immutable; <see cref="Score"/> is the SIMD CPU definition and the reference for the
/// ILGPU kernels, which run through <see cref="IStepKernels.ScoreValues(ValueHead, ReadOnlySpan{float}, int, Span{float})"/>.
/// </summary>
public abstract class ValueHead
{
    private protected ValueHead(int inputSize)
    {
        if (inputSize < 1)
            throw new ArgumentException($"The input size must be >= 1, got {inputSize}.", nameof(inputSize));
        InputSize = inputSize;
    }

    /// <summary>d, the width of a hidden state.</summary>
    public int InputSize { get; }

    /// <summary>
    /// V for every row, single-threaded and allocation-free. NaN in the hidden states propagates to V (the step
    /// kernels reject it there, naming the row).
    /// </summary>
    /// <param name="hidden">[rows, d] row-major hidden states.</param>
    /// <param name="rows">K.</param>
    /// <param name="values">[rows] out: V.</param>
    public void Score(ReadOnlySpan<float> hidden, int rows, Span<float> values)
    {
        Validation.Shape(rows, InputSize, hidden.Length, nameof(hidden));
        Validation.Rows(rows, values.Length, nameof(values));
        ScoreRows(hidden, 0, rows, values);
    }

    /// <summary>Rows [first, first + count) of hidden into values[first..]; arguments already validated.</summary>
    internal abstract void ScoreRows(ReadOnlySpan<float> hidden, int first, int count, Span<float> values);

    /// <summary>Multiply-adds per row, to decide whether a batch is worth splitting across threads.</summary>
    internal abstract long CostPerRow { get; }
}
