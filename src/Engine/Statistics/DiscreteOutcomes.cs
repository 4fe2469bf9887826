namespace Tilt.Engine.Statistics;

/// <summary>
/// A discrete base distribution p over outcomes, each with a reward r (ties allowed): the object on which
/// best-of-n [M4]-[M10] and the aligned family [M2] are computed exactly.
/// </summary>
/// <remarks>
/// Outcomes with equal rewards form a tie group g with mass c_g; groups are ordered by reward. The
/// cumulative masses F_g = P(r &lt;= r_g) and F-_g = P(r &lt; r_g) of [M5] are kept in two forms, as
/// prefix sums (accurate when F is small) and as suffix sums 1 - F (accurate when F is close to 1), because
/// best-of-n raises F to the n-th power and n = 10^6 turns any absolute error in F near 1 into a relative
/// error n times larger.
/// </remarks>
public sealed class DiscreteOutcomes
{
    private readonly double[] _probabilities;
    private readonly double[] _logProbabilities;
    private readonly double[] _rewards;
    private readonly int[] _groupOf;        // outcome -> tie group index, groups in increasing reward
    private readonly double[] _groupMass;   // c_g
    private readonly double[] _massBelow;   // F-_g = P(r < r_g), prefix sums
    private readonly double[] _massAbove;   // 1 - F_g = P(r > r_g), suffix sums
    private readonly double[] _logCdf;      // log F_g

    /// <summary>Builds the distribution; <paramref name="probabilities"/> is renormalized to sum to exactly 1.</summary>
    /// <param name="probabilities">p(y) per outcome: finite, non-negative, summing to 1 within <see cref="ProbabilityVector.SumTolerance"/>.</param>
    /// <param name="rewards">r(y) per outcome, finite, same length.</param>
    /// <exception cref="ArgumentException">A probability is negative or not finite, the sum is not 1, a reward is not finite, or the lengths differ.</exception>
    public DiscreteOutcomes(ReadOnlySpan<double> probabilities, ReadOnlySpan<double> rewards)
    {
        ProbabilityVector.Validate(probabilities, nameof(probabilities));
        if (rewards.Length != probabilities.Length)
        {
            throw new ArgumentException(
                $"rewards has {rewards.Length} entries but probabilities has {probabilities.Length}.", nameof(rewards));
        }

        for (int i = 0; i < rewards.Length; i++)
        {
            if (!double.IsFinite(rewards[i]))
            {
                throw new ArgumentException($"rewards[{i}] = {ProbabilityVector.Format(rewards[i])} is not a finite number.", nameof(rewards));
            }
        }

        int count = probabilities.Length;
        _probabilities = ProbabilityVector.Normalize(probabilities);
        _rewards = rewards.ToArray();
        _logProbabilities = new double[count];
        for (int i = 0; i < count; i++)
        {
            _logProbabilities[i] = Math.Log(_probabilities[i]);
        }

        var order = new int[count];
        for (int i = 0; i < count; i++)
        {
            order[i] = i;
        }

        var keys = (double[])_rewards.Clone();
        Array.Sort(keys, order);

        _groupOf = new int[count];
        var mass = new List<double>();
        var groupMass = new CompensatedSum();
        for (int k = 0; k < count; k++)
        {
            if (k > 0 && keys[k] != keys[k - 1])
            {
                mass.Add(groupMass.Value);
                groupMass = new CompensatedSum();
            }

            _groupOf[order[k]] = mass.Count;
            groupMass.Add(_probabilities[order[k]]);
        }

        mass.Add(groupMass.Value);
        _groupMass = [.. mass];

        int groups = _groupMass.Length;
        _massBelow = new double[groups];
        _massAbove = new double[groups];
        var below = new CompensatedSum();
        for (int g = 0; g < groups; g++)
        {
            _massBelow[g] = below.Value;
            below.Add(_groupMass[g]);
        }

        var above = new CompensatedSum();
        for (int g = groups - 1; g >= 0; g--)
        {
            _massAbove[g] = above.Value;
            above.Add(_groupMass[g]);
        }

        _logCdf = new double[groups];
        for (int g = 0; g < groups; g++)
        {
            double cdf = _massBelow[g] + _groupMass[g];
            // Use whichever representation of F has full relative accuracy in log F.
            _logCdf[g] = cdf <= 0.5 ? Math.Log(cdf) : AccurateMath.Log1p(-_massAbove[g]);
        }
    }

    /// <summary>Number of outcomes.</summary>
    public int Count => _probabilities.Length;

    /// <summary>p(y) per outcome, after renormalization.</summary>
    public IReadOnlyList<double> Probabilities => _probabilities;

    /// <summary>r(y) per outcome.</summary>
    public IReadOnlyList<double> Rewards => _rewards;

    /// <summary>Number of distinct reward values (tie groups).</summary>
    public int TieGroupCount => _groupMass.Length;

    /// <summary>F(y) = P_p(r(Y) &lt;= r(y)) [M5].</summary>
    public double CumulativeProbability(int outcome) => Math.Exp(_logCdf[Group(outcome)]);

    /// <summary>F-(y) = P_p(r(Y) &lt; r(y)) [M5].</summary>
    public double CumulativeProbabilityBelow(int outcome) => Math.Exp(LogCdfBelow(Group(outcome)));

    /// <summary>c(y) = P_p(r(Y) = r(y)) [M5]: the mass of the outcome's tie group.</summary>
    public double TieProbability(int outcome) => _groupMass[Group(outcome)];

    /// <summary>E_p[r].</summary>
    public double ExpectedReward()
    {
        var sum = new CompensatedSum();
        for (int i = 0; i < Count; i++)
        {
            sum.Add(_probabilities[i] * _rewards[i]);
        }

        return sum.Value;
    }

    internal ReadOnlySpan<double> LogProbabilitySpan => _logProbabilities;

    internal ReadOnlySpan<double> ProbabilitySpan => _probabilities;

    internal ReadOnlySpan<double> RewardSpan => _rewards;

    internal int GroupOf(int outcome) => _groupOf[outcome];

    internal double GroupMass(int group) => _groupMass[group];

    internal double MassBelow(int group) => _massBelow[group];

    internal double LogCdf(int group) => _logCdf[group];

    /// <summary>log F-_g; F-_g is F of the group below, so the same numbers telescope in [M5] and [M10].</summary>
    internal double LogCdfBelow(int group) => group == 0 ? double.NegativeInfinity : _logCdf[group - 1];

    private int Group(int outcome)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(outcome);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(outcome, Count);
        return _groupOf[outcome];
    }
}
