using System.Globalization;

namespace Tilt.Engine.Rewards;

/// <summary>
/// Prefers continuations of a target length: r = -|n - target| / target, where n is the continuation's length in
/// tokens without the stop token (Tokens.Count - 1 for a finished candidate, Tokens.Count otherwise). r is 0 at the
/// target, -1 for an empty continuation, and keeps falling by 1/target per token beyond the target.
/// Spec: <c>length:TARGET</c>.
/// </summary>
public sealed class LengthReward : IReward
{
    /// <param name="target">Target length in tokens, at least 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="target"/> is below 1.</exception>
    public LengthReward(int target)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(target, 1);
        Target = target;
    }

    /// <summary>Target length in tokens (stop token not counted).</summary>
    public int Target { get; }

    public string Description => "length:" + Target.ToString(CultureInfo.InvariantCulture);

    public bool NeedsHiddenState => false;

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        for (int i = 0; i < candidates.Count; i++)
        {
            rewards[i] = Of(candidates[i]);
        }
    }

    private double Of(RewardInput candidate)
    {
        // A finished candidate with no tokens breaks RewardInput's contract; reading it as empty beats a negative length.
        int n = Math.Max(0, candidate.Tokens.Count - (candidate.IsFinished ? 1 : 0));
        return -Math.Abs((double)n - Target) / Target;
    }
}
