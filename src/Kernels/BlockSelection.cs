namespace Tilt.Kernels;

/// <summary>
/// The choice among K scored blocks at a block boundary of blockwise CD (docs/math.md [M18]): keep the best, or draw one
/// with probability proportional to exp(V / beta) (the soft version, [M14] applied to blocks). K is at most a few
/// hundred, so this runs on the CPU whatever the backend.
/// </summary>
public static class BlockSelection
{
    /// <summary>Index of the highest score, the lowest index on exact ties.</summary>
    /// <exception cref="ArgumentException">Empty scores, NaN, or every score -inf.</exception>
    public static int Argmax(ReadOnlySpan<float> scores)
    {
        Check(scores);
        int best = 0;
        for (int k = 1; k < scores.Length; k++)
            if (scores[k] > scores[best])
                best = k;
        return best;
    }

    /// <summary>
    /// Draws k with probability exp(values[k] / beta) / sum_j exp(values[j] / beta) by Gumbel-max, the noise of block k
    /// being <see cref="GumbelNoise.Sample(in RngKey, int, int)"/>(key, k, K), so the draw is reproducible. -inf values are never drawn;
    /// beta = +inf draws uniformly among the others.
    /// </summary>
    /// <param name="values">[K] block values.</param>
    /// <param name="beta">&gt; 0.</param>
    /// <param name="key">The stream; use a Row (or Step) that no token draw of the same request uses.</param>
    /// <param name="logProbability">log of the probability with which the returned block was drawn.</param>
    public static int Sample(ReadOnlySpan<float> values, float beta, RngKey key, out double logProbability)
    {
        Check(values);
        if (!(beta > 0f))
            throw new ArgumentException($"beta must be > 0 (+infinity = uniform), got {beta}.", nameof(beta));
        int best = -1;
        float bestV = float.NegativeInfinity;
        double max = double.NegativeInfinity;
        for (int k = 0; k < values.Length; k++)
        {
            if (values[k] == float.NegativeInfinity)
                continue;
            float s = float.IsPositiveInfinity(beta) ? 0f : DeviceFloat.Div(values[k], beta);
            max = Math.Max(max, s);
            float v = DeviceFloat.Add(s, GumbelNoise.Sample(key, k, values.Length));
            if (v > bestV)
            {
                bestV = v;
                best = k;
            }
        }
        double z = 0;
        foreach (float value in values)
            if (value != float.NegativeInfinity)
                z += Math.Exp((float.IsPositiveInfinity(beta) ? 0.0 : DeviceFloat.Div(value, beta)) - max);
        double sBest = float.IsPositiveInfinity(beta) ? 0.0 : DeviceFloat.Div(values[best], beta);
        logProbability = sBest - max - Math.Log(z);
        return best;
    }

    private static void Check(ReadOnlySpan<float> scores)
    {
        if (scores.IsEmpty)
            throw new ArgumentException("There are no blocks to choose from.", nameof(scores));
        bool any = false;
        for (int k = 0; k < scores.Length; k++)
        {
            if (float.IsNaN(scores[k]))
                throw new ArgumentException($"Block {k} has a NaN score.", nameof(scores));
            if (float.IsPositiveInfinity(scores[k]))
                throw new ArgumentException($"Block {k} has a +infinity score.", nameof(scores));
            any |= scores[k] != float.NegativeInfinity;
        }
        if (!any)
            throw new ArgumentException("Every block score is -infinity.", nameof(scores));
    }
}
