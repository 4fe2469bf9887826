namespace Tilt.Engine.Rewards;

/// <summary>Scores a batch for <see cref="BatchCallbackReward"/>: rewards[i] for candidates[i].</summary>
public delegate void BatchRewardCallback(IReadOnlyList<RewardInput> candidates, Span<double> rewards);

/// <summary>What the host-computed rewards share: the host's name for the reward and whether it reads hidden states.</summary>
public abstract class HostReward : IReward
{
    /// <param name="description">What <see cref="Description"/> says (not parsed; name the host's reward).</param>
    /// <param name="needsHiddenState">True when the host reads <see cref="RewardInput.FinalHidden"/>.</param>
    protected HostReward(string description, bool needsHiddenState)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(description);
        Description = description;
        NeedsHiddenState = needsHiddenState;
    }

    public string Description { get; }

    public bool NeedsHiddenState { get; }

    public abstract void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards);
}

/// <summary>
/// A reward computed by the host, one candidate at a time: r = score(candidate). The C API passes a function
/// pointer through this. A NaN or infinite result, or an exception from the callback, is a
/// <see cref="TiltException"/> naming the candidate index; cancellation (<see cref="OperationCanceledException"/>)
/// passes through unwrapped.
/// </summary>
public sealed class CallbackReward : HostReward
{
    private readonly Func<RewardInput, double> _score;

    /// <param name="score">The reward of one candidate.</param>
    /// <param name="description">What <see cref="HostReward.Description"/> says (not parsed; name the host's reward).</param>
    /// <param name="needsHiddenState">True when the callback reads <see cref="RewardInput.FinalHidden"/>.</param>
    public CallbackReward(Func<RewardInput, double> score, string description, bool needsHiddenState = false)
        : base(description, needsHiddenState) => _score = score ?? throw new ArgumentNullException(nameof(score));

    public override void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        for (int i = 0; i < candidates.Count; i++)
        {
            double value;
            try
            {
                value = _score(candidates[i]);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new TiltException($"reward '{Description}' failed on candidate {i}: {e.Message}", e);
            }

            if (!double.IsFinite(value))
            {
                throw RewardExtensions.NonFinite(this, i, value);
            }

            rewards[i] = value;
        }
    }
}

/// <summary>
/// A reward computed by the host a whole batch at a time (one call per <see cref="Score"/>, for hosts that batch
/// their own model). The span is filled with NaN before the call, so a slot the callback leaves unwritten fails as
/// non-finite with its candidate index. An exception from the callback is a <see cref="TiltException"/> naming the
/// batch; cancellation passes through unwrapped.
/// </summary>
public sealed class BatchCallbackReward : HostReward
{
    private readonly BatchRewardCallback _score;

    /// <param name="score">Fills rewards[i] for candidates[i].</param>
    /// <param name="description">What <see cref="HostReward.Description"/> says (not parsed; name the host's reward).</param>
    /// <param name="needsHiddenState">True when the callback reads <see cref="RewardInput.FinalHidden"/>.</param>
    public BatchCallbackReward(BatchRewardCallback score, string description, bool needsHiddenState = false)
        : base(description, needsHiddenState) => _score = score ?? throw new ArgumentNullException(nameof(score));

    public override void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        Span<double> batch = rewards[..candidates.Count];
        batch.Fill(double.NaN);
        try
        {
            _score(candidates, batch);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new TiltException(
                $"reward '{Description}' failed on its batch of {candidates.Count} candidates (indices 0..{candidates.Count - 1}): {e.Message}", e);
        }

        RewardExtensions.EnsureFinite(this, batch);
    }
}
