using Tilt.Engine.Statistics;
using Tilt.Engine.Models;

namespace Tilt.Engine.Requests;

/// <summary>Options every aligned-decoding strategy shares.</summary>
public abstract record AlignOptions : DecodingOptions
{
    /// <summary>Largest number of independent outputs one request may ask for.</summary>
    public const int MaxSamples = 100_000;

    /// <summary>Independent aligned outputs to draw (for statistics). Defaults to 1.</summary>
    public int Samples
    {
        get;
        init => field = value is >= 1 and <= MaxSamples
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Samples), value, $"samples must be between 1 and {MaxSamples}, got {value}");
    } = 1;

    /// <summary>
    /// Wall-clock budget of the whole request. When it passes, the output in progress is returned as it
    /// stands, marked <see cref="AlignFinish.Deadline"/>, and no further outputs are started. Defaults to none.
    /// </summary>
    public TimeSpan? Deadline
    {
        get;
        init => field = value is null || value > TimeSpan.Zero
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Deadline), value, $"the deadline must be positive, got {value}");
    }

    /// <summary>Smallest beta accepted: the kernels divide float values by it, so it must stay a normal float.</summary>
    public const double MinBeta = AlignedFamily.MinBeta;

    internal static double CheckBeta(double value, string name) => AlignedFamily.CheckBeta(value, name);

    /// <summary>Tokens per block of the block strategies (blockwise CD, beam search): at least 1.</summary>
    internal static int CheckBlockSize(int value, string name) =>
        value >= 1 ? value : throw new ArgumentOutOfRangeException(name, value, $"the block size must be at least 1, got {value}");
}

/// <summary>
/// The strategies that draw n candidates from p in one batch (sharing the prompt's KV) and return one of them: best-of-n
/// and soft best-of-n. They differ only in how the one is chosen.
/// </summary>
public abstract record CandidatePoolOptions : AlignOptions
{
    /// <summary>Candidates per output (n), decoded as one batch sharing the prompt's KV. 1..256. Defaults to 4.</summary>
    public int N { get; init => field = SessionOptions.CheckSequences(value, nameof(N), "n"); } = 4;

    /// <summary>Return every candidate with its reward and log-probability. Defaults to false.</summary>
    public bool ReturnCandidates { get; init; }
}

/// <summary>Best-of-n [M4]: n candidates from p in one batch, keep the highest reward.</summary>
public sealed record BestOfNOptions : CandidatePoolOptions;

/// <summary>
/// Soft best-of-n [M27]: n candidates from p in one batch, the winner drawn with probability proportional to
/// exp(r_i / lambda). lambda -> 0 is best-of-n (ties uniform), lambda -> infinity is the base model; as n grows the law
/// tends to the KL-regularized optimum pi*_lambda [M2].
/// </summary>
public sealed record SoftBestOfNOptions : CandidatePoolOptions
{
    /// <summary>The selection temperature lambda: finite, at least <see cref="AlignOptions.MinBeta"/>. Defaults to 1.</summary>
    public double Lambda
    {
        get;
        init => field = double.IsFinite(value) && value >= MinBeta
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Lambda), value, $"lambda must be a finite number >= {MinBeta:R}, got {value:R}");
    } = 1.0;
}

/// <summary>Token-wise controlled decoding [M14]: tilt p(z | prefix) by exp(V(prefix, z)/beta) over the top-k of p.</summary>
public sealed record TokenwiseOptions : AlignOptions
{
    /// <summary>
    /// Candidate tokens per step: the k most likely tokens of p, each decoded as one forked sequence so the value
    /// can read its hidden state. 0 = the whole vocabulary (exact [M14]; practical for small vocabularies). The
    /// tilt is renormalized over this set, which is the approximation of [M14]. Defaults to 16.
    /// </summary>
    public int Candidates
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(Candidates), value, $"candidates must be >= 0 (0 = whole vocabulary), got {value}");
    } = 16;

    /// <summary>Tilt strength: small beta follows the value hard, large beta stays close to p. Defaults to 1.</summary>
    public double Beta { get; init => field = CheckBeta(value, nameof(Beta)); } = 1.0;
}

/// <summary>How blockwise CD picks among its candidate blocks.</summary>
public enum BlockSelectionMode
{
    /// <summary>The block with the highest value (ties: uniformly at random) [M18].</summary>
    Argmax,

    /// <summary>A block sampled with probability ∝ exp(V / beta).</summary>
    Sample,
}

/// <summary>Blockwise controlled decoding [M18]: K blocks of M tokens from p in parallel, keep the best, repeat.</summary>
public sealed record BlockwiseOptions : AlignOptions
{
    /// <summary>Candidate blocks per step (K), decoded as one batch. 1..256. Defaults to 8.</summary>
    public int K { get; init => field = SessionOptions.CheckSequences(value, nameof(K), "K"); } = 8;

    /// <summary>Tokens per block (M). With M >= the whole response, blockwise CD is best-of-K [M18]. Defaults to 8.</summary>
    public int BlockSize { get; init => field = CheckBlockSize(value, nameof(BlockSize)); } = 8;

    /// <summary>Argmax (default) or sampling ∝ exp(V/beta).</summary>
    public BlockSelectionMode Selection { get; init; } = BlockSelectionMode.Argmax;

    /// <summary>Temperature of <see cref="BlockSelectionMode.Sample"/>. Defaults to 1.</summary>
    public double Beta { get; init => field = CheckBeta(value, nameof(Beta)); } = 1.0;
}

/// <summary>
/// Early rejection (speculative rejection, Sun et al. 2024): best-of-n that stops its weakest candidates early. N candidates
/// from p share the prompt's KV; every <see cref="Every"/> tokens the unfinished ones are scored by the value (a trained
/// head, or the reward of the unfinished prefix) and the lowest floor(<see cref="Alpha"/> x unfinished) are stopped, their
/// sequences given back to the engine at once. Finished candidates are never stopped; the output is the survivor with the
/// highest final reward (ties uniformly at random). Alpha = 0 is exactly best-of-N, on the same candidates. Its KL is at
/// most log N - (N-1)/N like best-of-N's [M7] (docs/rejection.md).
/// </summary>
public sealed record RejectionOptions : AlignOptions
{
    /// <summary>Initial candidates (N). 1..256. Defaults to 16.</summary>
    public int N { get; init => field = SessionOptions.CheckSequences(value, nameof(N), "n"); } = 16;

    /// <summary>Fraction of the unfinished candidates stopped at each decision, in [0, 1). Defaults to 0.5.</summary>
    public double Alpha
    {
        get;
        init => field = value is >= 0 and < 1 && double.IsFinite(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Alpha), value, $"alpha must be in [0, 1) (0 = best-of-n, no rejection), got {value}");
    } = 0.5;

    /// <summary>Generated tokens between decisions (M): decisions at M, 2M, ... tokens. >= 1. Defaults to 8.</summary>
    public int Every
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Every), value, $"the decision interval must be at least 1 token, got {value}");
    } = 8;

    /// <summary>
    /// Budget mode: one decision only, when the unfinished candidates have generated this many tokens (then
    /// <see cref="Every"/> is not read); null: a decision every <see cref="Every"/> tokens. >= 1. Defaults to null.
    /// </summary>
    public int? DecideAt
    {
        get;
        init => field = value is null or >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(DecideAt), value, $"the decision length must be at least 1 token, got {value}");
    }

    /// <summary>Return every candidate (survivors and rejected) with its reward or score. Defaults to false.</summary>
    public bool ReturnCandidates { get; init; }

    /// <summary>Checks what needs the other options: a decision interval (or the one decision) shorter than the output.</summary>
    public void ValidateSchedule()
    {
        if (DecideAt is { } at)
        {
            if (at >= MaxTokens)
                throw new ArgumentException($"the decision length ({at} tokens) must be shorter than max tokens ({MaxTokens}): no decision would ever be made", nameof(DecideAt));
            return;
        }
        if (Every >= MaxTokens)
            throw new ArgumentException($"the decision interval ({Every} tokens) must be shorter than max tokens ({MaxTokens}): no decision would ever be made", nameof(Every));
    }
}
