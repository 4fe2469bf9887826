namespace Tilt.Engine.Rewards;

/// <summary>
/// What a reward sees of one candidate, and what a value function reads of one prefix besides its hidden state (one type
/// for both: a value is a reward's guess about a prefix, and the prefix reward is that reward applied to it).
/// </summary>
public sealed record RewardInput
{
    /// <summary>The prompt x.</summary>
    public required string Prompt { get; init; }

    /// <summary>
    /// The prompt's token ids (BOS included when the model adds one) where the engine has them: always for a value's
    /// prefixes (DPO and exact tabular values read them); null where a caller scored text it made itself.
    /// </summary>
    public IReadOnlyList<int>? PromptTokens { get; init; }

    /// <summary><see cref="PromptTokens"/> for a value that needs them; an error naming <paramref name="reader"/> when absent.</summary>
    public IReadOnlyList<int> RequirePromptTokens(string reader) =>
        PromptTokens ?? throw new ArgumentException($"{reader} reads the prompt's tokens, and this input has none (RewardInput.PromptTokens)");

    /// <summary>The continuation text only (no prompt), stop token excluded.</summary>
    public required string Text { get; init; }

    /// <summary>The continuation token ids (stop token included when <see cref="IsFinished"/>; for a value's prefix, the
    /// candidate token or block included).</summary>
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
