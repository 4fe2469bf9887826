using System.Buffers;

namespace Tilt.Engine.Rewards;

/// <summary>
/// The calibrated reward [M28] (InfAlign): a candidate's empirical mid-rank quantile among the candidates of the same
/// call that share its prompt, C_i = (#{j : r_j &lt; r_i} + 1/2 #{j : r_j = r_i}) / n, with n the size of that group and
/// the candidate itself counted among the equal ones. Values lie in (0, 1); distinct rewards get (k - 1/2) / n for
/// rank k = 1..n, tied rewards share the mean of their ranks', and a lone candidate gets 1/2.
/// <para>
/// The base samples C is estimated against are the call's own candidates: in best-of-n they are the n base samples of
/// the request, so C of the winner is the request's win-rate estimate [M10] and rewards of different scales become
/// comparable before an ensemble or a sum combines them [M21], [M22]. Spec: <c>calibrated(SPEC)</c>.
/// </para>
/// </summary>
public sealed class CalibratedReward : IReward
{
    /// <param name="inner">The reward whose quantiles are taken.</param>
    public CalibratedReward(IReward inner)
    {
        Inner = inner ?? throw new ArgumentNullException(nameof(inner));
        Description = $"calibrated({inner.Description})";
    }

    /// <summary>The reward whose quantiles are taken.</summary>
    public IReward Inner { get; }

    /// <summary>"calibrated(INNER)".</summary>
    public string Description { get; }

    public bool NeedsHiddenState => Inner.NeedsHiddenState;

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        int n = candidates.Count;
        double[] raw = ArrayPool<double>.Shared.Rent(n);
        try
        {
            Inner.ScoreChecked(candidates, raw.AsSpan(0, n));
            // A call may hold several prompts' candidates (an evaluator scoring many prompts at once); a quantile
            // only means something against samples of the same prompt.
            var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
            for (int i = 0; i < n; i++)
            {
                string prompt = candidates[i].Prompt ?? "";
                if (!groups.TryGetValue(prompt, out var members)) groups[prompt] = members = [];
                members.Add(i);
            }

            foreach (List<int> members in groups.Values)
            {
                MidRanks(raw, members, rewards);
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(raw);
        }
    }

    /// <summary>
    /// Mid-rank quantiles of <paramref name="raw"/>[members] written to <paramref name="quantiles"/>[members]: sorting
    /// puts each run of equal values at [start, end), so #less = start and #equal = end - start for all of them.
    /// </summary>
    public static void MidRanks(ReadOnlySpan<double> raw, IReadOnlyList<int> members, Span<double> quantiles)
    {
        ArgumentNullException.ThrowIfNull(members);
        int n = members.Count;
        int[] order = [.. members];
        double[] keys = new double[n];
        for (int i = 0; i < n; i++) keys[i] = raw[order[i]];
        Array.Sort(keys, order);
        int start = 0;
        while (start < n)
        {
            int end = start + 1;
            while (end < n && keys[end] == keys[start]) end++;
            double quantile = (start + 0.5 * (end - start)) / n;
            for (int i = start; i < end; i++) quantiles[order[i]] = quantile;
            start = end;
        }
    }

    /// <summary>
    /// True when <paramref name="reward"/>'s value for one candidate depends on the others in the call (it is or holds
    /// a calibrated reward), so a batch must not be split into chunks: each chunk would be ranked on its own.
    /// </summary>
    public static bool IsBatchRelative(IReward reward) => reward switch
    {
        CalibratedReward => true,
        WeightedReward sum => sum.Terms.Any(t => IsBatchRelative(t.Reward)),
        RewardEnsemble ensemble => ensemble.Members.Any(IsBatchRelative),
        _ => false,
    };
}
