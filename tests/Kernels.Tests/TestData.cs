namespace Tilt.Kernels.Tests;

internal static class TestData
{
    public static float Normal(Random rng) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));

    /// <summary>
    /// [rows, vocab] logits resembling a language model's (normal body, a few large outliers), with some -inf
    /// (masked) entries, optional ties and extreme magnitudes. Every row keeps at least one finite entry.
    /// </summary>
    public static float[] Logits(Random rng, int rows, int vocab, float scale = 3f, double masked = 0.05,
        bool ties = false, bool extreme = false)
    {
        var x = new float[rows * vocab];
        for (int r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * vocab, vocab);
            for (int i = 0; i < vocab; i++)
            {
                float v = scale * Normal(rng);
                if (rng.NextDouble() < 0.002)
                    v += 10f; // the few confident tokens a real model has
                if (ties)
                    v = MathF.Round(v);
                if (extreme && rng.NextDouble() < 0.01)
                    v = rng.NextDouble() < 0.5 ? -1e30f : 1e4f * (float)rng.NextDouble();
                if (rng.NextDouble() < masked)
                    v = float.NegativeInfinity;
                row[i] = v;
            }
            if (float.IsNegativeInfinity(row[rng.Next(vocab)]) || rng.NextDouble() < 0.5)
                row[rng.Next(vocab)] = scale * Normal(rng);
        }
        return x;
    }

    /// <summary>Upper chi-square quantile (Wilson-Hilferty; within ~1% of the exact value for df &gt;= 3).</summary>
    public static double ChiSquareQuantile(int df, double z) =>
        df * Math.Pow(1 - 2.0 / (9 * df) + z * Math.Sqrt(2.0 / (9 * df)), 3);
}
