namespace Tilt.Engine.Training;

/// <summary>
/// Per-feature standardization z = (h - mean) / std, fitted on the training rows and stored in the head file
/// (<see cref="Heads.HeadHeader.Normalized"/>), so that penalties and learning rates mean the same for every
/// feature whatever the scale of the model's hidden states. A feature that never varies gets std 1: it carries
/// no information and must not blow up.
/// </summary>
public sealed class FeatureScaling
{
    /// <summary>Below this std a feature counts as constant.</summary>
    public const double ConstantFeatureStd = 1e-8;

    private readonly float[] _mean;
    private readonly float[] _std;

    /// <param name="mean">[d] (copied).</param>
    /// <param name="std">[d], every entry finite and > 0 (copied).</param>
    public FeatureScaling(ReadOnlySpan<float> mean, ReadOnlySpan<float> std)
    {
        if (mean.Length != std.Length || mean.Length == 0) throw new ArgumentException($"mean has {mean.Length} entries and std {std.Length}; both need d >= 1", nameof(std));
        foreach (float s in std)
            if (!(s > 0) || !float.IsFinite(s)) throw new ArgumentException($"std entries must be finite and > 0, got {s}", nameof(std));
        foreach (float m in mean)
            if (!float.IsFinite(m)) throw new ArgumentException($"mean entries must be finite, got {m}", nameof(mean));
        _mean = mean.ToArray();
        _std = std.ToArray();
    }

    /// <summary>The identity scaling of d features (mean 0, std 1).</summary>
    public static FeatureScaling Identity(int d) => new(new float[d], Enumerable.Repeat(1f, d).ToArray());

    public int Dimension => _mean.Length;

    /// <summary>[d].</summary>
    public ReadOnlySpan<float> Mean => _mean;

    /// <summary>[d].</summary>
    public ReadOnlySpan<float> Std => _std;

    /// <summary>z = (h - mean) / std for one row.</summary>
    public void Apply(ReadOnlySpan<float> hidden, Span<float> z)
    {
        for (int j = 0; j < _mean.Length; j++) z[j] = (hidden[j] - _mean[j]) / _std[j];
    }

    /// <summary>Accumulates weighted means and variances in float64, one row at a time.</summary>
    public sealed class Builder(int dimension)
    {
        private readonly double[] _sum = new double[dimension];
        private readonly double[] _sumSquares = new double[dimension];
        private double _weight;

        public void Add(ReadOnlySpan<float> row, double weight = 1.0)
        {
            if (row.Length != _sum.Length) throw new ArgumentException($"a row has {row.Length} features, expected {_sum.Length}", nameof(row));
            for (int j = 0; j < _sum.Length; j++)
            {
                double x = row[j];
                _sum[j] += weight * x;
                _sumSquares[j] += weight * x * x;
            }
            _weight += weight;
        }

        public FeatureScaling Build()
        {
            int d = _sum.Length;
            var mean = new float[d];
            var std = new float[d];
            for (int j = 0; j < d; j++)
            {
                double m = _weight > 0 ? _sum[j] / _weight : 0;
                double variance = _weight > 0 ? Math.Max(0, _sumSquares[j] / _weight - m * m) : 0;
                double s = Math.Sqrt(variance);
                mean[j] = (float)m;
                std[j] = s > ConstantFeatureStd ? (float)s : 1f;
            }
            return new FeatureScaling(mean, std);
        }
    }
}
