namespace Tilt.Engine.Statistics;

/// <summary>
/// KL estimates from samples, for strategies that cannot see the aligned policy's logits: the best-of-n
/// estimator KLhat [M9] and the log-likelihood-ratio estimate [M15].
/// </summary>
public static class KlEstimators
{
    /// <summary>
    /// How far above 0 a log-probability may be and still count as log 1. A sequence log-probability is a
    /// sum of float32 log-softmax values, which can round to slightly above 0 for a near-certain sequence.
    /// </summary>
    public const double LogProbabilityRoundingTolerance = 1e-6;

    /// <summary>KLhat(eps) [M9] for one best-of-n sample whose base-model probability is <paramref name="eps"/>.</summary>
    /// <param name="eps">p(y) in [0, 1]; 0 gives the limit log n - (n-1)/n.</param>
    /// <param name="n">Number of candidates, &gt;= 1.</param>
    public static double KlHat(double eps, int n)
    {
        if (double.IsNaN(eps) || eps < 0.0 || eps > 1.0)
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be a probability in [0, 1].");
        }

        return KlHatFromLogProbability(Math.Log(eps), n);
    }

    /// <summary>
    /// KLhat [M9] from log eps, for sequence probabilities that underflow a double (log eps = -5000 is fine).
    /// </summary>
    /// <param name="logEps">log p(y) &lt;= 0 (up to <see cref="LogProbabilityRoundingTolerance"/>); -infinity gives the eps -&gt; 0 limit.</param>
    /// <param name="n">Number of candidates, &gt;= 1.</param>
    /// <remarks>
    /// With u = -n log(1 - eps), A = (1 - eps)^n = exp(-u) and B = 1 - A = -expm1(-u):
    /// KLhat = A (log n - (n-1)/n - (n-1)/n u) + B log(B/eps).
    /// log(B/eps) is never formed as a difference of two huge logs: for small eps it is
    /// log n + log(u_1/eps) + log(B/u) with u_1 = -log(1 - eps), each term a bounded ratio computed from
    /// log1p/expm1, so eps = 1e-300 or exp(-5000) loses nothing. Absolute accuracy is about 1e-14.
    /// </remarks>
    public static double KlHatFromLogProbability(double logEps, int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        if (double.IsNaN(logEps) || logEps > LogProbabilityRoundingTolerance)
        {
            throw new ArgumentOutOfRangeException(nameof(logEps), logEps, "logEps must be a log-probability (<= 0).");
        }

        logEps = Math.Min(logEps, 0.0);
        if (n == 1 || logEps == 0.0)
        {
            // pi_1 = p; and eps = 1 means the outcome is the only one.
            return 0.0;
        }

        double logN = Math.Log(n);
        double eps = Math.Exp(logEps);
        double u1 = -AccurateMath.Log1mExp(logEps); // -log(1 - eps) > 0; underflows to 0 below eps ~ 1e-308

        // log(u1 / eps) = log(1 + eps/2 + eps^2/3 + ...); below eps = 4e-18 the first term is exact to double precision.
        double logU1OverEps = logEps < -40.0 ? 0.5 * eps : Math.Log(u1 / eps);
        double logU = logN + logEps + logU1OverEps;
        double u = Math.Exp(logU);

        double a = Math.Exp(-u);
        double b = -AccurateMath.Expm1(-u);

        double logBOverEps;
        if (logEps > -1.0)
        {
            // eps near 1: B/eps -> 1, and log B - log eps is a difference of two accurate small numbers.
            logBOverEps = AccurateMath.Log1mExp(-u) - logEps;
        }
        else
        {
            // log(B/u) = log((1 - e^-u)/u); its series -u/2 + u^2/24 avoids log(tiny) - log(tiny).
            double logBOverU = u < 1e-5 ? u * (-0.5 + u / 24.0) : AccurateMath.Log1mExp(-u) - logU;
            logBOverEps = logN + logU1OverEps + logBOverU;
        }

        double bound = logN - (n - 1.0) / n;
        // A * u -> 0 as u -> infinity; skip it once A underflows to avoid 0 * infinity.
        double first = a == 0.0 ? 0.0 : a * (bound - (n - 1.0) / n * u);
        double second = b == 0.0 ? 0.0 : b * logBOverEps;
        return first + second;
    }

    /// <summary>Sample mean of KLhat [M9] over best-of-n samples, from their base-model log-probabilities.</summary>
    /// <param name="logBaseProbabilities">log p(y) of each returned sample (sequence log-probabilities).</param>
    /// <param name="n">Number of candidates each sample was chosen from.</param>
    public static KlEstimate BestOfNFromLogProbabilities(ReadOnlySpan<double> logBaseProbabilities, int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        if (logBaseProbabilities.IsEmpty)
        {
            throw new ArgumentException("logBaseProbabilities is empty; an estimate needs at least one sample.", nameof(logBaseProbabilities));
        }

        var values = new double[logBaseProbabilities.Length];
        for (int i = 0; i < values.Length; i++)
        {
            double le = logBaseProbabilities[i];
            if (double.IsNaN(le) || le > LogProbabilityRoundingTolerance)
            {
                throw new ArgumentException(
                    $"logBaseProbabilities[{i}] = {ProbabilityVector.Format(le)} is not a log-probability (<= 0).", nameof(logBaseProbabilities));
            }

            values[i] = KlHatFromLogProbability(le, n);
        }

        return KlEstimate.FromSamples(values);
    }

    /// <summary>Sample mean of KLhat [M9] from base-model probabilities eps in [0, 1].</summary>
    public static KlEstimate BestOfNFromProbabilities(ReadOnlySpan<double> baseProbabilities, int n)
    {
        var logs = new double[baseProbabilities.Length];
        for (int i = 0; i < logs.Length; i++)
        {
            double eps = baseProbabilities[i];
            if (double.IsNaN(eps) || eps < 0.0 || eps > 1.0)
            {
                throw new ArgumentException(
                    $"baseProbabilities[{i}] = {ProbabilityVector.Format(eps)} is not a probability in [0, 1].", nameof(baseProbabilities));
            }

            logs[i] = Math.Log(eps);
        }

        return BestOfNFromLogProbabilities(logs, n);
    }

    /// <summary>
    /// KL(pi || p) as the mean of log pi(y) - log p(y) over samples y ~ pi [M15], unbiased, with its standard error.
    /// </summary>
    /// <param name="logAligned">log pi(y) of each sample under the policy that produced it.</param>
    /// <param name="logBase">log p(y) of the same samples under the base model.</param>
    /// <remarks>Individual ratios can be negative; only their mean estimates a KL, so a small negative mean is possible.</remarks>
    public static KlEstimate LogLikelihoodRatio(ReadOnlySpan<double> logAligned, ReadOnlySpan<double> logBase)
    {
        if (logAligned.Length != logBase.Length)
        {
            throw new ArgumentException($"logBase has {logBase.Length} entries but logAligned has {logAligned.Length}.", nameof(logBase));
        }

        if (logAligned.IsEmpty)
        {
            throw new ArgumentException("logAligned is empty; an estimate needs at least one sample.", nameof(logAligned));
        }

        var ratios = new double[logAligned.Length];
        for (int i = 0; i < ratios.Length; i++)
        {
            RequireFiniteLog(logAligned[i], i, nameof(logAligned));
            RequireFiniteLog(logBase[i], i, nameof(logBase));
            ratios[i] = logAligned[i] - logBase[i];
        }

        return KlEstimate.FromSamples(ratios);
    }

    private static void RequireFiniteLog(double value, int index, string name)
    {
        if (!double.IsFinite(value) || value > LogProbabilityRoundingTolerance)
        {
            throw new ArgumentException($"{name}[{index}] = {ProbabilityVector.Format(value)} is not a finite log-probability (<= 0).", name);
        }
    }
}
