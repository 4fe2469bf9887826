namespace Tilt.Engine.Statistics;

/// <summary>One point of the reward-vs-KL frontier of the KL-regularized optimum [M2].</summary>
/// <param name="Beta">Regularization strength.</param>
/// <param name="Kl">KL(pi*_beta || p) in nats.</param>
/// <param name="ExpectedReward">E_{pi*_beta}[r].</param>
/// <param name="WinRate">Win-rate of pi*_beta against p [M10], ties counting 1/2.</param>
public readonly record struct FrontierPoint(double Beta, double Kl, double ExpectedReward, double WinRate);

/// <summary>A base distribution tilted by a reward: pi ∝ p exp(r / beta) [M2], or pi ∝ p q^(1/beta) [M3].</summary>
public sealed class TiltedDistribution
{
    internal TiltedDistribution(double beta, double[] probabilities, double[] logProbabilities, double kl, double expectedReward) =>
        (Beta, Probabilities, LogProbabilities, KlToBase, ExpectedReward) = (beta, probabilities, logProbabilities, kl, expectedReward);

    /// <summary>The beta it was tilted with.</summary>
    public double Beta { get; }

    /// <summary>pi(y) per outcome.</summary>
    public IReadOnlyList<double> Probabilities { get; }

    /// <summary>log pi(y) per outcome; finite where pi(y) underflows, -infinity where pi(y) is exactly 0.</summary>
    public IReadOnlyList<double> LogProbabilities { get; }

    /// <summary>KL(pi || p) in nats.</summary>
    public double KlToBase { get; }

    /// <summary>
    /// E_pi[r]. For the [M3] family r = log q, so this is E_pi[log q] and the cross-entropy H(pi, q) is its negation.
    /// </summary>
    public double ExpectedReward { get; }
}

/// <summary>
/// The aligned family pi_beta ∝ p q^(1/beta) [M3] and the KL-regularized optimum pi*_beta ∝ p exp(r/beta) [M2]
/// for a discrete p, and the optimal reward-vs-KL frontier traced by beta.
/// </summary>
/// <remarks>
/// Both are one computation, log pi = log p + r/beta - log Z. Rewards are first shifted by a centre c (which
/// changes neither pi nor the KL): KL = E_pi[(r - c)/beta] - log Z_c. When every |r - c| &lt;= beta the tilt is
/// mild and log Z_c = log1p(sum p expm1((r - c)/beta)), so a KL of 1e-20 at large beta is not lost to the
/// rounding of log(1 + tiny). Otherwise c = max r and the log-sum-exp is shifted by it, which cannot overflow
/// even for beta = 1e-300.
/// </remarks>
public static class AlignedFamily
{
    /// <summary>Smallest beta accepted anywhere: the kernels divide float values by it, so it must stay a normal float.</summary>
    public const double MinBeta = 1e-30;

    /// <summary>The one check of a KL-regularization beta [M1] (request options and exact values share it).</summary>
    internal static double CheckBeta(double value, string name) =>
        double.IsFinite(value) && value >= MinBeta
            ? value
            : throw new ArgumentOutOfRangeException(name, value, $"beta must be a finite number >= {MinBeta:R}, got {value:R}");

    /// <summary>pi*_beta ∝ p exp(r / beta) [M2], the maximizer of E_pi[r] - beta KL(pi || p) [M1].</summary>
    /// <param name="outcomes">Base distribution p and rewards r.</param>
    /// <param name="beta">Finite, &gt; 0. Large beta gives p, beta -&gt; 0 gives the argmax of r.</param>
    public static TiltedDistribution KlRegularizedOptimum(DiscreteOutcomes outcomes, double beta)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        RequireBeta(beta);
        return Compute(outcomes.ProbabilitySpan, outcomes.LogProbabilitySpan, outcomes.RewardSpan, beta);
    }

    /// <summary>pi_beta ∝ p q^(1/beta) [M3]: [M2] with r = log q.</summary>
    /// <param name="p">Base distribution.</param>
    /// <param name="q">Target distribution (zeros allowed, but it must put mass somewhere p does).</param>
    /// <param name="beta">Finite, &gt; 0.</param>
    public static TiltedDistribution Tilt(ReadOnlySpan<double> p, ReadOnlySpan<double> q, double beta)
    {
        ProbabilityVector.Validate(p, nameof(p));
        ProbabilityVector.Validate(q, nameof(q));
        if (q.Length != p.Length)
        {
            throw new ArgumentException($"q has {q.Length} entries but p has {p.Length}.", nameof(q));
        }

        RequireBeta(beta);
        double[] pn = ProbabilityVector.Normalize(p);
        double[] qn = ProbabilityVector.Normalize(q);
        var logP = new double[pn.Length];
        var logQ = new double[pn.Length];
        bool overlap = false;
        for (int i = 0; i < pn.Length; i++)
        {
            logP[i] = Math.Log(pn[i]);
            logQ[i] = Math.Log(qn[i]);
            overlap |= pn[i] > 0.0 && qn[i] > 0.0;
        }

        if (!overlap)
        {
            throw new ArgumentException("q is 0 wherever p is positive, so p q^(1/beta) has no mass to normalize.", nameof(q));
        }

        return Compute(pn, logP, logQ, beta);
    }

    /// <summary>Frontier points (beta, KL, E[r], win-rate) of pi*_beta [M2], one per beta, in the given order.</summary>
    public static FrontierPoint[] Frontier(DiscreteOutcomes outcomes, ReadOnlySpan<double> betas)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        if (betas.IsEmpty)
        {
            throw new ArgumentException("betas is empty.", nameof(betas));
        }

        var points = new FrontierPoint[betas.Length];
        for (int i = 0; i < betas.Length; i++)
        {
            TiltedDistribution pi = KlRegularizedOptimum(outcomes, betas[i]);
            double[] probabilities = [.. pi.Probabilities];
            points[i] = new FrontierPoint(betas[i], pi.KlToBase, pi.ExpectedReward, WinRate.Exact(outcomes, probabilities));
        }

        return points;
    }

    /// <summary><paramref name="count"/> betas spaced evenly in log from <paramref name="min"/> to <paramref name="max"/>, both included.</summary>
    public static double[] LogSpacedBetas(double min, double max, int count)
    {
        RequireBeta(min, nameof(min));
        RequireBeta(max, nameof(max));
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 2);
        if (max <= min)
        {
            throw new ArgumentException($"max = {ProbabilityVector.Format(max)} must be greater than min = {ProbabilityVector.Format(min)}.", nameof(max));
        }

        var betas = new double[count];
        double logMin = Math.Log(min);
        double step = (Math.Log(max) - logMin) / (count - 1);
        for (int i = 0; i < count; i++)
        {
            betas[i] = Math.Exp(logMin + i * step);
        }

        betas[0] = min;
        betas[^1] = max;
        return betas;
    }

    private static void RequireBeta(double beta, string name = "beta")
    {
        if (!double.IsFinite(beta) || beta <= 0.0)
        {
            throw new ArgumentOutOfRangeException(name, beta, $"{name} must be a finite number > 0.");
        }
    }

    /// <param name="p">Normalized base probabilities.</param>
    /// <param name="logP">log p.</param>
    /// <param name="r">Rewards; -infinity allowed (the [M3] case q = 0) and gives pi = 0.</param>
    /// <param name="beta">Finite, &gt; 0.</param>
    private static TiltedDistribution Compute(ReadOnlySpan<double> p, ReadOnlySpan<double> logP, ReadOnlySpan<double> r, double beta)
    {
        int count = p.Length;

        // Centre: the p-weighted mean of the finite rewards on the support, and their max.
        var weighted = new CompensatedSum();
        double supportMass = 0.0;
        double max = double.NegativeInfinity;
        bool anyExcluded = false;
        for (int i = 0; i < count; i++)
        {
            if (p[i] == 0.0)
            {
                continue;
            }

            if (double.IsNegativeInfinity(r[i]))
            {
                anyExcluded = true;
                continue;
            }

            weighted.Add(p[i] * r[i]);
            supportMass += p[i];
            max = Math.Max(max, r[i]);
        }

        double mean = weighted.Value / supportMass;
        bool mild = !anyExcluded;
        for (int i = 0; i < count && mild; i++)
        {
            mild = p[i] == 0.0 || Math.Abs(r[i] - mean) <= beta;
        }

        double centre = mild ? mean : max;
        var shifted = new double[count]; // (r - centre) / beta; -infinity where pi = 0
        double logZ;
        if (mild)
        {
            var z = new CompensatedSum();
            for (int i = 0; i < count; i++)
            {
                shifted[i] = (r[i] - centre) / beta;
                if (p[i] > 0.0)
                {
                    z.Add(p[i] * AccurateMath.Expm1(shifted[i]));
                }
            }

            logZ = AccurateMath.Log1p(z.Value);
        }
        else
        {
            var z = new CompensatedSum();
            for (int i = 0; i < count; i++)
            {
                // r - max <= 0, so the division can only underflow towards -infinity, never overflow.
                shifted[i] = (r[i] - centre) / beta;
                if (p[i] > 0.0)
                {
                    z.Add(p[i] * Math.Exp(shifted[i]));
                }
            }

            logZ = Math.Log(z.Value);
        }

        var probabilities = new double[count];
        var logProbabilities = new double[count];
        var kl = new CompensatedSum();
        var reward = new CompensatedSum();
        for (int i = 0; i < count; i++)
        {
            if (p[i] == 0.0 || double.IsNegativeInfinity(shifted[i]))
            {
                logProbabilities[i] = double.NegativeInfinity;
                continue;
            }

            double logRatio = shifted[i] - logZ; // log(pi / p)
            logProbabilities[i] = logP[i] + logRatio;
            probabilities[i] = Math.Exp(logProbabilities[i]);
            kl.Add(probabilities[i] * logRatio);
            reward.Add(probabilities[i] * r[i]);
        }

        return new TiltedDistribution(beta, probabilities, logProbabilities, Math.Max(0.0, kl.Value), reward.Value);
    }
}
