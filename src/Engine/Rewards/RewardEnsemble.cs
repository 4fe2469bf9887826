using System.Buffers;

namespace Tilt.Engine.Rewards;

/// <summary>How a <see cref="RewardEnsemble"/> combines its members' rewards for one candidate [M21].</summary>
public enum EnsembleMode
{
    /// <summary>r = (1/m) * sum_j r_j. Spec: <c>mean(A;B;...)</c>.</summary>
    Mean,

    /// <summary>r = min_j r_j, the pessimistic choice. Spec: <c>min(A;B;...)</c>.</summary>
    Min,

    /// <summary>
    /// r = mean - lambda * std, with std the population standard deviation over the m members,
    /// sqrt((1/m) * sum_j (r_j - mean)^2): candidates the members disagree on are marked down.
    /// Spec: <c>meanstd(LAMBDA;A;B;...)</c>.
    /// </summary>
    MeanMinusStd,
}

/// <summary>
/// An ensemble of rewards for the same objective [M21], combined per candidate by <see cref="Mode"/>. Ensembles
/// mitigate, but do not remove, reward hacking: a continuation that fools every member still scores high.
/// </summary>
public sealed class RewardEnsemble : IReward
{
    private readonly IReward[] _members;

    /// <param name="mode">How members combine.</param>
    /// <param name="members">At least one reward.</param>
    /// <param name="lambda">The std multiplier of <see cref="EnsembleMode.MeanMinusStd"/>, finite and &gt;= 0 (a negative
    /// lambda would reward disagreement, which is what reward hacking exploits); must be 0 for the other modes.</param>
    /// <exception cref="ArgumentException">No members, a null member, an unknown mode or a bad lambda.</exception>
    public RewardEnsemble(EnsembleMode mode, IEnumerable<IReward> members, double lambda = 0.0)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown ensemble mode");
        }

        _members = [.. members];
        if (_members.Length == 0)
        {
            throw new ArgumentException("an ensemble needs at least one member", nameof(members));
        }

        if (_members.Any(m => m is null))
        {
            throw new ArgumentException("an ensemble member is null", nameof(members));
        }

        if (mode == EnsembleMode.MeanMinusStd ? !(double.IsFinite(lambda) && lambda >= 0.0) : lambda != 0.0)
        {
            throw new ArgumentOutOfRangeException(nameof(lambda), lambda,
                mode == EnsembleMode.MeanMinusStd
                    ? $"lambda must be a finite number >= 0, got {RewardExtensions.FormatNumber(lambda)}"
                    : $"lambda applies to MeanMinusStd only; {mode} needs 0, got {RewardExtensions.FormatNumber(lambda)}");
        }

        Mode = mode;
        Lambda = lambda;
        NeedsHiddenState = _members.Any(m => m.NeedsHiddenState);
        string list = string.Join(';', _members.Select(m => m.Description));
        Description = mode switch
        {
            EnsembleMode.Mean => $"mean({list})",
            EnsembleMode.Min => $"min({list})",
            _ => $"meanstd({RewardExtensions.FormatNumber(lambda)};{list})",
        };
    }

    /// <summary>r = mean of the members.</summary>
    public static RewardEnsemble Mean(params IReward[] members) => new(EnsembleMode.Mean, members);

    /// <summary>r = min of the members (pessimistic).</summary>
    public static RewardEnsemble Min(params IReward[] members) => new(EnsembleMode.Min, members);

    /// <summary>r = mean - lambda * population std of the members.</summary>
    public static RewardEnsemble MeanMinusStd(double lambda, params IReward[] members) => new(EnsembleMode.MeanMinusStd, members, lambda);

    public EnsembleMode Mode { get; }

    /// <summary>The std multiplier (0 unless <see cref="EnsembleMode.MeanMinusStd"/>).</summary>
    public double Lambda { get; }

    public IReadOnlyList<IReward> Members => _members;

    /// <summary>"mean(A;B)", "min(A;B)" or "meanstd(LAMBDA;A;B)".</summary>
    public string Description { get; }

    public bool NeedsHiddenState { get; }

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        int n = candidates.Count;
        int m = _members.Length;
        double[] rented = ArrayPool<double>.Shared.Rent(m * n);
        try
        {
            Span<double> values = rented.AsSpan(0, m * n); // [rows = m members, cols = n candidates]
            for (int j = 0; j < m; j++)
            {
                _members[j].ScoreChecked(candidates, values.Slice(j * n, n));
            }

            for (int i = 0; i < n; i++)
            {
                rewards[i] = Combine(values, i, n, m);
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(rented);
        }

        RewardExtensions.EnsureFinite(this, rewards[..n]);
    }

    private double Combine(ReadOnlySpan<double> values, int candidate, int n, int m)
    {
        if (Mode == EnsembleMode.Min)
        {
            double min = double.PositiveInfinity;
            for (int j = 0; j < m; j++)
            {
                min = Math.Min(min, values[j * n + candidate]);
            }

            return min;
        }

        double sum = 0.0;
        for (int j = 0; j < m; j++)
        {
            sum += values[j * n + candidate];
        }

        double mean = sum / m;
        if (Mode == EnsembleMode.Mean)
        {
            return mean;
        }

        // Two passes: the sum of squared deviations avoids the cancellation of E[r^2] - mean^2.
        double squares = 0.0;
        for (int j = 0; j < m; j++)
        {
            double deviation = values[j * n + candidate] - mean;
            squares += deviation * deviation;
        }

        return mean - Lambda * Math.Sqrt(squares / m);
    }
}
