using System.Globalization;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Engine.Rewards;

/// <summary>Checked scoring for callers of <see cref="IReward"/> (strategies, composites, hosts).</summary>
public static class RewardExtensions
{
    /// <summary>
    /// <see cref="IReward.Score"/> with the contract enforced on both sides: the batch is checked before the call
    /// (one slot per candidate, hidden states present when the reward needs them) and every value after it
    /// (finite), so a third-party reward that breaks the contract fails with its name and the candidate index
    /// instead of poisoning a softmax or an argmax.
    /// </summary>
    /// <exception cref="ArgumentException">The span length differs from the candidate count, or the reward needs
    /// hidden states and a candidate has none.</exception>
    /// <exception cref="TiltException">The reward failed or gave a non-finite value.</exception>
    public static void ScoreChecked(this IReward reward, IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(candidates);
        if (rewards.Length != candidates.Count)
        {
            throw new ArgumentException(
                $"the rewards span has {rewards.Length} slots for {candidates.Count} candidates", nameof(rewards));
        }

        for (int i = 0; i < candidates.Count; i++)
        {
            RewardInput? candidate = candidates[i];
            if (candidate is null)
            {
                throw new ArgumentException($"candidate {i} is null", nameof(candidates));
            }

            if (reward.NeedsHiddenState && candidate.FinalHidden.IsEmpty)
            {
                throw new ArgumentException(
                    $"reward '{reward.Description}' needs the final hidden state, and candidate {i} has none", nameof(candidates));
            }
        }

        if (candidates.Count == 0)
        {
            return;
        }

        reward.Score(candidates, rewards);
        EnsureFinite(reward, rewards);
    }

    /// <summary>
    /// <see cref="ScoreChecked"/> within a request's budget: candidates are scored in order and the first <c>n</c> that
    /// were scored before the deadline are returned as n (the rest of <paramref name="rewards"/> is left untouched). The
    /// first candidate is scored alone and always, so a caller has an output to return; the others go in chunks sized by
    /// the time per candidate measured so far to fit what is left of the budget (so a neural reward still scores them in
    /// few batched calls), with the budget checked between chunks; a regex reward's match timeout is cut to what is left.
    /// A reward that holds <c>calibrated(...)</c> is scored in one call whatever the deadline ([M28] ranks the whole batch).
    /// </summary>
    /// <returns>How many leading candidates were scored: all of them unless the deadline passed.</returns>
    /// <exception cref="OperationCanceledException">The budget's token was cancelled.</exception>
    public static int ScoreWithin(this IReward reward, IReadOnlyList<RewardInput> candidates, Span<double> rewards, ScoringBudget budget)
    {
        budget.Cancellation.ThrowIfCancellationRequested();
        // Without a deadline the batch is scored in one call (neural rewards run all candidates in one pass). A
        // calibrated reward is too: it ranks each candidate against the others, and chunks would be ranked apart.
        if (!budget.HasDeadline || CalibratedReward.IsBatchRelative(reward))
        {
            reward.ScoreChecked(candidates, rewards);
            return candidates.Count;
        }
        ArgumentNullException.ThrowIfNull(candidates);
        if (rewards.Length != candidates.Count)
            throw new ArgumentException($"the rewards span has {rewards.Length} slots for {candidates.Count} candidates", nameof(rewards));

        var clock = System.Diagnostics.Stopwatch.StartNew();
        int scored = 0;
        while (scored < candidates.Count)
        {
            int size = 1;
            if (scored > 0)
            {
                budget.Cancellation.ThrowIfCancellationRequested();
                if (budget.IsExpired) return scored;
                double perCandidate = clock.Elapsed.TotalSeconds / scored;
                double left = budget.Remaining!.Value.TotalSeconds;
                size = (int)Math.Clamp(perCandidate > 0 ? Math.Floor(left / perCandidate) : candidates.Count, 1, candidates.Count - scored);
            }
            try
            {
                // The first candidate runs under the reward's own limits only: an output must exist.
                using var scope = (scored == 0 ? ScoringBudget.None : budget).Enter();
                var chunk = new RewardInput[size];
                for (int i = 0; i < size; i++) chunk[i] = candidates[scored + i];
                reward.ScoreChecked(chunk, rewards.Slice(scored, size));
            }
            catch (ScoringBudgetExceededException)
            {
                return scored;
            }
            scored += size;
        }
        return scored;
    }

    /// <summary>Scores one candidate through <see cref="ScoreChecked"/>.</summary>
    public static double Score(this IReward reward, RewardInput candidate)
    {
        Span<double> one = stackalloc double[1];
        reward.ScoreChecked([candidate], one);
        return one[0];
    }

    /// <summary>Throws the contract's error for the first non-finite value.</summary>
    internal static void EnsureFinite(IReward reward, ReadOnlySpan<double> rewards)
    {
        for (int i = 0; i < rewards.Length; i++)
        {
            if (!double.IsFinite(rewards[i]))
            {
                throw NonFinite(reward, i, rewards[i]);
            }
        }
    }

    internal static TiltException NonFinite(IReward reward, int candidate, double value) =>
        new($"reward '{reward.Description}' gave {value.ToString(CultureInfo.InvariantCulture)} for candidate {candidate}; rewards must be finite");

    /// <summary>Shortest round-trip text of a weight or lambda, the form <see cref="RewardSpec"/> reads back.</summary>
    internal static string FormatNumber(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
