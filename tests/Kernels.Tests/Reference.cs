using Tilt.Kernels;

namespace Tilt.Kernels.Tests;

/// <summary>Plain float64 references written for clarity, not speed: full sorts, no skipping, no heaps.</summary>
internal static class Reference
{
    public sealed record RowResult(int Token, double BaseLogProb, double TiltedLogProb, double Kl, int[] Survivors, double[] Probabilities);

    public static double LogSumExp(IEnumerable<double> values)
    {
        var v = values.ToArray();
        double m = v.Max();
        return m + Math.Log(v.Sum(x => Math.Exp(x - m)));
    }

    /// <summary>
    /// Tilted scores exactly as the contract defines them in float32: s = x[id] / T + V / beta (T = 1 for greedy rows,
    /// no V term when beta is +inf or there are no values).
    /// </summary>
    public static (int[] Ids, float[] Scores) Scores(float[] x, int[]? ids, float[]? v, float beta, SamplingParameters p)
    {
        ids ??= Enumerable.Range(0, x.Length).ToArray();
        float t = p.IsGreedy ? 1f : p.Temperature;
        bool tilt = v is not null && !float.IsPositiveInfinity(beta);
        var s = new float[ids.Length];
        for (int j = 0; j < ids.Length; j++)
        {
            float sj = x[ids[j]] / t;
            s[j] = tilt ? sj + v![j] / beta : sj;
        }
        return (ids, s);
    }

    /// <summary>Survivors of top-k then top-p (best first: score descending, id ascending) and their probabilities.</summary>
    public static (int[] Ids, double[] Probs, double[] Scores) Filter(int[] ids, float[] s, SamplingParameters p)
    {
        var order = Enumerable.Range(0, ids.Length).Where(j => !float.IsNegativeInfinity(s[j]))
            .OrderByDescending(j => s[j]).ThenBy(j => ids[j]).ToArray();
        if (!p.IsGreedy && p.TopK > 0 && p.TopK < ids.Length && p.TopK < order.Length)
            order = order[..p.TopK];
        double s0 = s[order[0]];
        double[] w = order.Select(j => Math.Exp(s[j] - s0)).ToArray();
        if (!p.IsGreedy && p.TopP < 1f)
        {
            double target = p.TopP * w.Sum(), cum = 0;
            int len = order.Length;
            for (int j = 0; j < order.Length; j++)
            {
                cum += w[j];
                if (cum >= target)
                {
                    len = j + 1;
                    break;
                }
            }
            order = order[..len];
            w = w[..len];
        }
        double total = w.Sum();
        return (order.Select(j => ids[j]).ToArray(), w.Select(v => v / total).ToArray(), order.Select(j => (double)s[j]).ToArray());
    }

    /// <summary>Survivors and probabilities of SampleBase (the full vocabulary, no tilt).</summary>
    public static (int[] Ids, double[] Probs) Filter(float[] x, SamplingParameters p)
    {
        var (ids, s) = Scores(x, null, null, float.PositiveInfinity, p);
        var (f, probs, _) = Filter(ids, s, p);
        return (f, probs);
    }

    public static RowResult Tilted(float[] x, int[]? candidateIds, float[]? v, float beta, SamplingParameters p, RngKey key)
    {
        double logZ = LogSumExp(x.Where(u => !float.IsNegativeInfinity(u)).Select(u => (double)u));
        var (ids, s) = Scores(x, candidateIds, v, beta, p);
        var (surv, probs, _) = Filter(ids, s, p);
        if (p.IsGreedy)
        {
            int g = surv[0];
            return new RowResult(g, x[g] - logZ, 0, logZ - x[g], [g], [1.0]);
        }
        int best = -1;
        float bestV = float.NegativeInfinity;
        foreach (int id in surv)
        {
            float vv = s[Array.IndexOf(ids, id)] + GumbelNoise.Sample(key, id, x.Length);
            if (vv > bestV || (vv == bestV && id < best))
            {
                bestV = vv;
                best = id;
            }
        }
        int pos = Array.IndexOf(surv, best);
        double kl = 0;
        for (int j = 0; j < surv.Length; j++)
            if (probs[j] > 0)
                kl += probs[j] * (Math.Log(probs[j]) - (x[surv[j]] - logZ));
        return new RowResult(best, x[best] - logZ, Math.Log(probs[pos]), kl, surv, probs);
    }

    public static RowResult SampleBase(ReadOnlySpan<float> x, SamplingParameters p, RngKey key) =>
        Tilted(x.ToArray(), null, null, float.PositiveInfinity, p, key);
}
