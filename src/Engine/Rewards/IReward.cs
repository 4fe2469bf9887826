namespace Tilt.Engine.Rewards;

/// <summary>What a reward sees of one candidate.</summary>
public sealed class RewardInput
{
    /// <summary>The prompt x.</summary>
    public required string Prompt { get; init; }

    /// <summary>The continuation text only (no prompt), stop token excluded.</summary>
    public required string Text { get; init; }

    /// <summary>The continuation token ids (stop token included when <see cref="IsFinished"/>).</summary>
    public required IReadOnlyList<int> Tokens { get; init; }

    /// <summary>
    /// True when the continuation ended with a stop token; false when it was cut at the length limit, or is
    /// an unfinished prefix scored as a value.
    /// </summary>
    public required bool IsFinished { get; init; }

    /// <summary>[d] model hidden state after the last text token; empty when the caller did not supply it.</summary>
    public ReadOnlyMemory<float> FinalHidden { get; init; }
}

/// <summary>A reward r(x, y) that scores candidate continuations in batches.</summary>
public interface IReward
{
    /// <summary>Canonical spec-like text, e.g. "0.7*lexicon:pos.txt+0.3*length:40".</summary>
    string Description { get; }

    /// <summary>True when <see cref="RewardInput.FinalHidden"/> must be supplied (trained heads).</summary>
    bool NeedsHiddenState { get; }

    /// <summary>
    /// Scores a batch; rewards[i] for candidates[i]. Every value must be finite: a non-finite result is a
    /// <see cref="TiltException"/> naming the reward and the candidate index.
    /// </summary>
    void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards);
}
