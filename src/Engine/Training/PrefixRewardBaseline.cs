using Tilt.Engine.Models;
using Tilt.Engine.Rewards;

namespace Tilt.Engine.Training;

/// <summary>
/// The baseline a value head must beat: the reward applied to the unfinished prefix, r(x, y^t), which is what
/// token-wise and blockwise CD use without a head (<c>PrefixRewardValue</c>). On the held-out rollouts the head is
/// judged on, each recorded prefix is scored as the decoders score it (text so far, unfinished unless it is a
/// finished rollout's whole text, the hidden state there), and its squared correlation with the realized reward
/// r(x, y) is taken per prefix-length range: the R^2 of the best affine predictor from the prefix reward, which is
/// all that matters to blockwise CD (it ranks blocks) and what a head's R^2 is compared with.
/// </summary>
internal static class PrefixRewardBaseline
{
    /// <summary>Prefixes scored per reward call: large enough for batched rewards, small enough to bound memory.</summary>
    private const int Chunk = 512;

    /// <summary>The report with each bucket's <see cref="PrefixBucket.PrefixRewardRSquared"/> filled in.</summary>
    public static ValueHeldOutReport Attach(ILanguageModel model, IReward reward, RolloutSet set, IReadOnlyCollection<int> heldOut,
        ValueHeldOutReport report, CancellationToken cancellationToken)
    {
        var rows = PrefixRows.All(set, heldOut);
        var prefixRewards = new double[rows.Count]; // [held-out prefixes]
        var inputs = new List<RewardInput>(Chunk);
        int scored = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            inputs.Add(Input(model, reward, set, rows.RolloutOf[i], rows.RowOf[i]));
            if (inputs.Count == Chunk || i == rows.Count - 1)
            {
                cancellationToken.ThrowIfCancellationRequested();
                reward.ScoreChecked(inputs, prefixRewards.AsSpan(scored, inputs.Count));
                scored += inputs.Count;
                inputs.Clear();
            }
        }

        var rewards = rows.Rewards();
        var weights = rows.Weights();
        var buckets = report.ByPrefixLength
            .Select(b => b with { PrefixRewardRSquared = SquaredCorrelation(rows, prefixRewards, rewards, weights, b.From, b.To) })
            .ToList();
        return report with { ByPrefixLength = buckets };
    }

    private static RewardInput Input(ILanguageModel model, IReward reward, RolloutSet set, int rollout, int row)
    {
        var r = set.Rollouts[rollout];
        int t = r.Positions[row];
        bool whole = r.Finished && t == r.TextTokenCount;
        return new RewardInput
        {
            Prompt = set.Prompts[r.PromptIndex],
            Text = whole ? r.Text : model.Detokenize(r.Tokens.AsSpan(0, t)),
            Tokens = whole ? r.Tokens : r.Tokens[..t],
            IsFinished = whole,
            FinalHidden = reward.NeedsHiddenState ? set.Feature(rollout, row).ToArray() : ReadOnlyMemory<float>.Empty,
        };
    }

    /// <summary>Weighted corr(a, b)^2 over the rows whose prefix length is in [from, to]; NaN when either is constant.</summary>
    internal static double SquaredCorrelation(PrefixRows rows, double[] a, double[] b, double[] weights, int from, int to)
    {
        double w = 0, sa = 0, sb = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            int p = rows.Position(i);
            if (p < from || p > to) continue;
            w += weights[i];
            sa += weights[i] * a[i];
            sb += weights[i] * b[i];
        }
        if (!(w > 0)) return double.NaN;
        double ma = sa / w, mb = sb / w, saa = 0, sbb = 0, sab = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            int p = rows.Position(i);
            if (p < from || p > to) continue;
            double da = a[i] - ma, db = b[i] - mb;
            saa += weights[i] * da * da;
            sbb += weights[i] * db * db;
            sab += weights[i] * da * db;
        }
        // Two passes keep the deviations exact; a constant side has no correlation to speak of.
        return saa > 0 && sbb > 0 ? Math.Clamp(sab * sab / (saa * sbb), 0, 1) : double.NaN;
    }
}
