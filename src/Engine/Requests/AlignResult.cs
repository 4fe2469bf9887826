using Tilt.Engine.Statistics;

namespace Tilt.Engine.Requests;

/// <summary>Why an aligned sample stopped.</summary>
public enum AlignFinish
{
    /// <summary>A stop token (EOS, or BOS for llama2.c-style models) ended the text.</summary>
    Eos,

    /// <summary>The token limit was reached.</summary>
    Length,

    /// <summary>The deadline passed; the text is what was accepted until then (a partial result).</summary>
    Deadline,

    /// <summary>A stop string or stop token id of the request ended the text (<see cref="StopSequences"/>).</summary>
    Stop,
}

/// <summary>How a KL number was obtained.</summary>
public enum KlMethod
{
    /// <summary>Best-of-n's analytical upper bound log n - (n-1)/n [M7].</summary>
    BestOfNBound,

    /// <summary>The best-of-n estimator KLhat(eps) with eps = p(winner | x) [M9].</summary>
    BestOfNEstimate,

    /// <summary>
    /// Soft best-of-n [M27]: log n - H(P(I = . | candidates)), the KL of the selection from a uniform pick over the
    /// candidates at hand. By data processing its expectation bounds KL(pi_soft || p) from above (a uniform pick returns a
    /// draw from p); each value lies in [0, log n] and is capped by best-of-n's bound [M7], which holds for soft best-of-n
    /// too.
    /// </summary>
    SoftBestOfNEstimate,

    /// <summary>Sum over steps of the exact per-step drift KL(pi(.|s_t) || p(.|s_t)) over the candidate set [M15].</summary>
    StepDriftSum,

    /// <summary>Sum over blocks of the per-block best-of-K bound [M19].</summary>
    BlockBound,

    /// <summary>Sum over blocks of the per-block estimator with eps = p(block | prefix) [M19], [M9].</summary>
    BlockEstimate,

    /// <summary>
    /// Plain sampling: log q(y) - log p(y) of the returned sample, an unbiased one-sample estimate of KL(q || p) for the
    /// sampler q (0 at temperature 1 without top-k/top-p, where q = p).
    /// </summary>
    SamplerLogRatio,
}

/// <summary>A KL(pi || p) figure with its provenance and the budget band it falls in [M26].</summary>
public sealed record KlReport(double Value, KlMethod Method)
{
    public KlBudgetBand Band => KlBudget.Classify(Value);
}

/// <summary>One candidate of a best-of-n draw, reported on request.</summary>
/// <param name="Index">Candidate index (its RNG row).</param>
/// <param name="Text">Detokenized continuation.</param>
/// <param name="Tokens">Continuation tokens (stop token included when it ended).</param>
/// <param name="Reward">r(x, y).</param>
/// <param name="LogProb">log p(y | x) under the base model.</param>
/// <param name="Finished">True when a stop token ended it.</param>
public sealed record ScoredCandidate(int Index, string Text, IReadOnlyList<int> Tokens, double Reward, double LogProb, bool Finished)
{
    /// <summary>
    /// Early rejection: the candidate was stopped at a decision; then <see cref="Reward"/> is its value when it was stopped
    /// (the partial score that ranked it last), <see cref="Text"/> what it had written, and it could not win.
    /// </summary>
    public bool Rejected { get; init; }
}

/// <summary>Wall-clock costs of one aligned sample.</summary>
/// <param name="Prefill">Tokenize, set up the session and prefill the prompt.</param>
/// <param name="FirstAccepted">From the start until the first text was accepted (time to first token / block).</param>
/// <param name="Total">From the start to the end.</param>
/// <param name="DecodeCalls">Batched decode calls after the prefill.</param>
public sealed record AlignTimings(TimeSpan Prefill, TimeSpan FirstAccepted, TimeSpan Total, int DecodeCalls)
{
    /// <summary>Mean time of one decode step (all time after the prefill over the decode calls).</summary>
    public TimeSpan PerStep => DecodeCalls > 0 ? (Total - Prefill) / DecodeCalls : TimeSpan.Zero;

    /// <summary>
    /// Time spent inside the model's decode calls after the prefill; the rest of Total - Prefill is the engine's
    /// own work (step kernels, value and reward scoring, bookkeeping).
    /// </summary>
    public TimeSpan ModelTime { get; init; }

    /// <summary>Time the request waited in the engine's queue before it was admitted (counted from submission).</summary>
    public TimeSpan Queued { get; init; }
}

/// <summary>One aligned output.</summary>
/// <param name="Index">Which of the request's independent samples this is.</param>
/// <param name="Text">Detokenized continuation (no prompt).</param>
/// <param name="Tokens">Continuation tokens (stop token included when it ended).</param>
/// <param name="Reward">r(x, y) of the returned text under the request's reward.</param>
/// <param name="LogProb">log p(y | x) under the base model (T = 1, full vocabulary).</param>
/// <param name="Kl">KL(pi || p) of the strategy that produced it: bound or estimate, named.</param>
/// <param name="KlBound">An upper bound where the strategy has one (best-of-n, blockwise), else null.</param>
/// <param name="Finish">Why it stopped.</param>
/// <param name="TokensEvaluated">Tokens the model decoded for this output (prefill excluded): the compute cost.</param>
/// <param name="Timings">Wall-clock costs.</param>
/// <param name="Candidates">Best-of-n: every candidate, when requested; otherwise empty.</param>
public sealed record AlignedSample(
    int Index,
    string Text,
    IReadOnlyList<int> Tokens,
    double Reward,
    double LogProb,
    KlReport Kl,
    KlReport? KlBound,
    AlignFinish Finish,
    long TokensEvaluated,
    AlignTimings Timings,
    IReadOnlyList<ScoredCandidate> Candidates)
{
    /// <summary>True when the deadline cut the sample short.</summary>
    public bool IsPartial => Finish == AlignFinish.Deadline;

    /// <summary>Best-of-n: fraction of the other candidates whose reward the winner beats (ties count 1/2) [M10]; else null.</summary>
    public double? WinRateVsCandidates { get; init; }

    /// <summary>Plain generation: log q(y | x) under the tempered/filtered sampler (0 for greedy); NaN for aligned strategies.</summary>
    public double SamplerLogProb { get; init; } = double.NaN;

    /// <summary>Tokens in the prompt (BOS included when the model adds one).</summary>
    public int PromptTokens { get; init; }

    /// <summary>
    /// Tokens of a forced prefix at the start of <see cref="Tokens"/> and <see cref="Text"/> (not sampled: excluded from
    /// <see cref="LogProb"/> and KL); 0 without one.
    /// </summary>
    public int ForcedTokens { get; init; }

    /// <summary>Prompt tokens whose KV came from the engine's prompt cache instead of a prefill.</summary>
    public int CachedPromptTokens { get; init; }

    /// <summary>Early rejection: candidates still alive after each decision (N before the first); null for other strategies.</summary>
    public IReadOnlyList<int>? SurvivorsPerDecision { get; init; }

    /// <summary>
    /// Early rejection: tokens the rejected candidates would still have decoded had they run to the survivors' mean length
    /// (an estimate of the saving against full best-of-N); null for other strategies.
    /// </summary>
    public long? TokensSavedEstimate { get; init; }

    /// <summary>Scheduler iterations between the request's submission and its admission (0: admitted at the next one).</summary>
    public long QueuedIterations { get; init; }

    /// <summary>With <see cref="GenerationOptions.HiddenStateStride"/>: the prefix lengths (generated tokens) whose hidden states
    /// <see cref="HiddenStates"/> holds, ascending; empty otherwise.</summary>
    public IReadOnlyList<int> HiddenPositions { get; init; } = [];

    /// <summary>[HiddenPositions.Count, d] final hidden states of those prefixes, row-major.</summary>
    public ReadOnlyMemory<float> HiddenStates { get; init; }

    /// <summary>With <see cref="GenerationOptions.HiddenStateStride"/>: the final hidden state [d] after the last decoded token
    /// (a stop token is not decoded, so a stopped sample's is the prefix before it).</summary>
    public ReadOnlyMemory<float> FinalHidden { get; init; }

    /// <summary>
    /// Per-token log-probabilities of <see cref="Tokens"/>, one entry per token, when the request asked for them
    /// (<see cref="DecodingOptions.Logprobs"/>); null otherwise.
    /// </summary>
    public IReadOnlyList<TokenLogProb>? TokenLogProbs { get; init; }
}

/// <summary>Something that happened during an aligned generation.</summary>
public abstract record AlignEvent(int Sample);

/// <summary>Text was accepted: a token (token-wise CD), a block (blockwise CD) or the winner (best-of-n).</summary>
/// <param name="Tokens">The accepted tokens.</param>
/// <param name="TextDelta">Text they complete.</param>
/// <param name="RunningKl">KL of the sample so far, by the strategy's method.</param>
public sealed record TextAccepted(int Sample, IReadOnlyList<int> Tokens, string TextDelta, double RunningKl) : AlignEvent(Sample)
{
    /// <summary>log p of the accepted tokens under the base model (T = 1, full vocabulary), summed; NaN where not reported.</summary>
    public double LogProb { get; init; } = double.NaN;

    /// <summary>Per-token log-probabilities of <see cref="Tokens"/> when the request asked for them; null otherwise.</summary>
    public IReadOnlyList<TokenLogProb>? TokenLogProbs { get; init; }
}

/// <summary>Candidates were scored at a decision point.</summary>
/// <param name="Step">Token position (token-wise) or block number (blockwise); 0 for best-of-n.</param>
/// <param name="Scores">Value or reward of each candidate.</param>
/// <param name="Chosen">Index of the accepted candidate.</param>
public sealed record CandidatesScored(int Sample, int Step, IReadOnlyList<double> Scores, int Chosen) : AlignEvent(Sample);

/// <summary>A decode step finished (progress for long best-of-n rollouts).</summary>
public sealed record StepCompleted(int Sample, int Step, int LiveSequences) : AlignEvent(Sample);

/// <summary>One aligned output is complete.</summary>
public sealed record SampleCompleted(AlignedSample Result) : AlignEvent(Result.Index);
