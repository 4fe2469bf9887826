namespace Tilt.Kernels;

/// <summary>
/// Several value heads over the same hidden states, combined with per-row weights: V = sum_i w_i V_i
/// (docs/math.md [M22]: one head per objective, weights chosen per request without retraining).
/// </summary>
public sealed class MultiObjectiveValueHead
{
    private readonly ValueHead[] _heads;
    private float[] _perHead = new float[64]; // [heads, rows] scratch

    /// <param name="heads">The objectives' heads; all must take the same input size.</param>
    public MultiObjectiveValueHead(IReadOnlyList<ValueHead> heads)
    {
        if (heads.Count == 0)
            throw new ArgumentException("At least one head is needed.", nameof(heads));
        foreach (var h in heads)
            if (h.InputSize != heads[0].InputSize)
                throw new ArgumentException($"All heads must take the same input size: {h.InputSize} != {heads[0].InputSize}.", nameof(heads));
        _heads = heads.ToArray();
    }

    public IReadOnlyList<ValueHead> Heads => _heads;

    public int InputSize => _heads[0].InputSize;

    /// <summary>
    /// V[k] = sum_i weights[k, i] * V_i(h[k]). Allocation-free once its scratch has grown; one thread at a time.
    /// </summary>
    /// <param name="hidden">[rows, d].</param>
    /// <param name="rows">K.</param>
    /// <param name="weights">[rows, heads] per-row objective weights (each row may belong to another request).</param>
    /// <param name="values">[rows] out.</param>
    public void Score(ReadOnlySpan<float> hidden, int rows, ReadOnlySpan<float> weights, Span<float> values)
    {
        Validation.Shape(rows, _heads.Length, weights.Length, nameof(weights));
        Validation.Rows(rows, values.Length, nameof(values));
        Span<float> perHead = PerHead(rows);
        for (int i = 0; i < _heads.Length; i++)
            _heads[i].Score(hidden, rows, perHead.Slice(i * rows, rows));
        Combine(perHead, rows, weights, values);
    }

    internal Span<float> PerHead(int rows)
    {
        if (_perHead.Length < rows * _heads.Length)
            _perHead = new float[Math.Max(rows * _heads.Length, _perHead.Length * 2)];
        return _perHead.AsSpan(0, rows * _heads.Length);
    }

    internal void Combine(ReadOnlySpan<float> perHead, int rows, ReadOnlySpan<float> weights, Span<float> values)
    {
        int n = _heads.Length;
        for (int r = 0; r < rows; r++)
        {
            float v = 0f;
            for (int i = 0; i < n; i++)
                v += weights[r * n + i] * perHead[i * rows + r];
            values[r] = v;
        }
    }
}
