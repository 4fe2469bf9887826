namespace Tilt.Engine.Statistics;

/// <summary>
/// The exact law of soft best-of-n [M27] on an enumerable model: n i.i.d. draws Y_1..Y_n from p, Y_I returned with
/// P(I = i) = exp(r(Y_i)/lambda) / sum_j exp(r(Y_j)/lambda), so
/// pi_soft(y) = n p(y) E[ w(y) / (w(y) + S) ] with w = exp(r/lambda) and S the sum of w over n - 1 further draws.
/// </summary>
/// <remarks>
/// The expectation depends on the other draws only through their rewards, so S is enumerated over multisets of the
/// distinct reward values (a convolution of n - 1 draws of the reward distribution), not over outcome tuples. Weights are
/// taken relative to the largest reward, exp((r - max r) / lambda), so no lambda overflows.
/// </remarks>
public sealed class SoftBestOfN
{
    /// <summary>Largest number of distinct partial sums the convolution may hold (n and the distinct rewards bound it).</summary>
    public const int MaxStates = 1 << 20;

    private readonly double[] _probabilities;

    public SoftBestOfN(DiscreteOutcomes outcomes, int n, double lambda)
    {
        ArgumentNullException.ThrowIfNull(outcomes);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        if (!(double.IsFinite(lambda) && lambda > 0)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "lambda must be finite and > 0");
        Outcomes = outcomes;
        N = n;
        Lambda = lambda;

        var p = outcomes.Probabilities;
        var r = outcomes.Rewards;
        double top = r.Max();
        double Weight(double reward) => Math.Exp((reward - top) / lambda);

        // The reward distribution: distinct weights and their mass.
        var mass = new Dictionary<double, double>();
        for (int i = 0; i < p.Count; i++)
            if (p[i] > 0) mass[Weight(r[i])] = mass.GetValueOrDefault(Weight(r[i])) + p[i];

        if (mass.ContainsKey(0.0))
            throw new ArgumentException($"lambda = {lambda:R} underflows exp((r - max r) / lambda) for the reward range; at such a lambda the law is best-of-n's (BestOfN)", nameof(lambda));

        // Distribution of S over n - 1 draws, keyed by the multiset's weight sum (sums of the same multiset agree exactly).
        var sums = new Dictionary<double, double> { [0.0] = 1.0 };
        for (int draw = 1; draw < n; draw++)
        {
            var next = new Dictionary<double, double>();
            foreach (var (s, ps) in sums)
                foreach (var (w, pw) in mass)
                    next[s + w] = next.GetValueOrDefault(s + w) + ps * pw;
            if (next.Count > MaxStates) throw new ArgumentException($"n = {n} with {mass.Count} distinct rewards needs more than {MaxStates} states", nameof(n));
            sums = next;
        }

        _probabilities = new double[p.Count];
        for (int i = 0; i < p.Count; i++)
        {
            if (p[i] == 0) continue;
            double w = Weight(r[i]), expectation = 0;
            foreach (var (s, ps) in sums) expectation += ps * (w / (w + s));
            _probabilities[i] = n * p[i] * expectation;
        }

        double kl = 0;
        for (int i = 0; i < p.Count; i++)
            if (_probabilities[i] > 0) kl += _probabilities[i] * Math.Log(_probabilities[i] / p[i]);
        Kl = Math.Max(0, kl);
    }

    public DiscreteOutcomes Outcomes { get; }
    public int N { get; }
    public double Lambda { get; }

    /// <summary>pi_soft(y_i) for every outcome.</summary>
    public IReadOnlyList<double> Probabilities => _probabilities;

    /// <summary>KL(pi_soft || p), exact; at most best-of-n's bound log n - (n-1)/n [M7].</summary>
    public double Kl { get; }
}
