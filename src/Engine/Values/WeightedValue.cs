using Tilt.Engine.Rewards;
namespace Tilt.Engine.Values;

/// <summary>Multi-objective value V = sum_i w_i V_i [M22]: one value per objective, weights chosen per request.</summary>
public sealed class WeightedValue : IValueFunction
{
    private readonly (double Weight, IValueFunction Value)[] _terms;
    private double[] _scratch = [];

    public WeightedValue(IEnumerable<(double Weight, IValueFunction Value)> terms)
    {
        _terms = terms?.ToArray() ?? throw new ArgumentNullException(nameof(terms));
        if (_terms.Length == 0) throw new ArgumentException("a weighted value needs at least one term", nameof(terms));
        foreach (var (w, v) in _terms)
        {
            if (!double.IsFinite(w)) throw new ArgumentException($"weight {w} of {v.Description} is not finite", nameof(terms));
            ArgumentNullException.ThrowIfNull(v);
        }
        Description = string.Join(" + ", _terms.Select(t => $"{t.Weight:R}*{t.Value.Description}"));
        NeedsInputs = _terms.Any(t => t.Value.NeedsInputs);
    }

    public string Description { get; }
    public bool NeedsInputs { get; }

    public void Evaluate(IReadOnlyList<RewardInput>? inputs, ReadOnlySpan<float> hidden, int count, Span<double> values)
    {
        if (_scratch.Length < count) _scratch = new double[count];
        values[..count].Clear();
        foreach (var (w, v) in _terms)
        {
            v.Evaluate(v.NeedsInputs ? inputs : null, hidden, count, _scratch);
            for (int i = 0; i < count; i++) values[i] += w * _scratch[i];
        }
    }
}
