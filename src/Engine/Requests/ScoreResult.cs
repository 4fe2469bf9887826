namespace Tilt.Engine.Requests;

/// <summary>A scored text (<see cref="ScoringOptions"/>): per-token log p at T = 1 under the base model.</summary>
/// <param name="PromptTokens">The prompt's tokens (BOS first when the model adds one).</param>
/// <param name="Tokens">The continuation's tokens.</param>
/// <param name="TokenLogProbs">One entry per continuation token: log p(token | prompt, earlier tokens) in float64, with the
/// requested alternatives.</param>
/// <param name="LogProb">log p(continuation | prompt): the sum of <paramref name="TokenLogProbs"/>.</param>
/// <param name="IsGreedy">True when every continuation token is a most likely token of its row (what greedy decoding would
/// have produced, ties included): the "greedy match" of log-likelihood harnesses.</param>
public sealed record ScoreResult(
    IReadOnlyList<int> PromptTokens,
    IReadOnlyList<int> Tokens,
    IReadOnlyList<TokenLogProb> TokenLogProbs,
    double LogProb,
    bool IsGreedy)
{
    /// <summary>The continuation's text.</summary>
    public string Text { get; init; } = "";

    /// <summary>
    /// With <see cref="ScoringOptions.IncludePrompt"/>: one entry per prompt token, the first NaN (no prefix to
    /// condition on); null otherwise.
    /// </summary>
    public IReadOnlyList<TokenLogProb>? PromptLogProbs { get; init; }

    /// <summary>Tokens decoded for this score (teacher-forced rows; the prompt's prefill excluded).</summary>
    public long TokensEvaluated { get; init; }
}

/// <summary>A scoring request is complete.</summary>
public sealed record ScoreCompleted(ScoreResult Result) : AlignEvent(0);
