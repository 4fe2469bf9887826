using System.Globalization;

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
