namespace Tilt.Engine.Statistics;

/// <summary>A KL estimate in nats from samples: the sample mean, its standard error and the sample count.</summary>
/// <param name="Value">Sample mean of the per-sample KL values.</param>
/// <param name="StandardError">s / sqrt(count) with the unbiased sample variance s^2; NaN for a single sample.</param>
/// <param name="SampleCount">Number of samples averaged.</param>
public readonly record struct KlEstimate(double Value, double StandardError, int SampleCount)
{
    /// <summary>The [M26] band of <see cref="Value"/>.</summary>
    public KlBudgetBand Band => KlBudget.Classify(Value);

    /// <summary>Mean and standard error of per-sample values (Welford's update, stable for large offsets).</summary>
    /// <exception cref="ArgumentException">No values, or a value that is NaN or infinite.</exception>
    public static KlEstimate FromSamples(ReadOnlySpan<double> values)
    {
        if (values.IsEmpty)
        {
            throw new ArgumentException("values is empty; an estimate needs at least one sample.", nameof(values));
        }

        double mean = 0.0;
        double m2 = 0.0;
        for (int i = 0; i < values.Length; i++)
        {
            double v = values[i];
            if (!double.IsFinite(v))
            {
                throw new ArgumentException($"values[{i}] = {ProbabilityVector.Format(v)} is not a finite number.", nameof(values));
            }

            double delta = v - mean;
            mean += delta / (i + 1);
            m2 += delta * (v - mean);
        }

        double standardError = values.Length < 2
            ? double.NaN
            : Math.Sqrt(Math.Max(0.0, m2) / (values.Length - 1) / values.Length);
        return new KlEstimate(mean, standardError, values.Length);
    }
}
