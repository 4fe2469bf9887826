namespace Tilt.Kernels;

/// <summary>
/// The per-step math of every decoding strategy over a batch of rows, one call per decoding step.
/// Implementations: "cpu-simd" (what Auto takes, with or without CUDA), "ilgpu-cuda" (forced with Cuda), "ilgpu-cpu" (tests only).
/// All backends give the same tokens for the same inputs (see docs/kernels.md for the exact conditions).
/// </summary>
/// <remarks>
/// Thread safety: an instance owns scratch buffers and device memory, so use it from one thread at a time
/// (calls may come from different threads if they do not overlap). Shapes and parameters are validated before any
/// output is written; the values themselves (NaN, +inf) are checked row by row as they are read, and a rejected row
/// throws <see cref="ArgumentException"/> naming the row and index, leaving the outputs unspecified. Logits of -inf
/// are allowed and mean "masked"; a row whose logits are all -inf, or that holds +inf, is rejected.
/// </remarks>
public interface IStepKernels : IDisposable
{
    /// <summary>"cpu-simd", "ilgpu-cuda" or "ilgpu-cpu".</summary>
    string Name { get; }

    /// <summary>
    /// Base sampling for a batch. Only the first rows*vocab logits and the first rows entries of the other spans
    /// are used.
    /// </summary>
    /// <param name="logits">[rows, vocab] row-major raw logits.</param>
    /// <param name="rows">Number of rows (K), &gt;= 0.</param>
    /// <param name="vocab">Vocabulary size, &gt;= 1.</param>
    /// <param name="parameters">[rows] per-row temperature / top-k / top-p.</param>
    /// <param name="keys">[rows] per-row random stream.</param>
    /// <param name="tokens">[rows] out: sampled token ids.</param>
    /// <param name="baseLogProb">[rows] out: log softmax(logits)[token] at temperature 1 over the full vocabulary.</param>
    /// <param name="samplerLogProb">[rows] out: log-prob of the token under the tempered and filtered distribution
    /// actually sampled from (0 for greedy rows).</param>
    void SampleBase(ReadOnlySpan<float> logits, int rows, int vocab,
        ReadOnlySpan<SamplingParameters> parameters, ReadOnlySpan<RngKey> keys,
        Span<int> tokens, Span<float> baseLogProb, Span<float> samplerLogProb);

    /// <summary>
    /// One fused step of token-wise controlled decoding over a batch (docs/math.md [M14], [M15]): tilted scores
    /// s = logits/T + values/beta over each row's candidate set, top-k / top-p on s, a Gumbel-max draw (noise keyed by
    /// token id, so the token does not depend on the order of the candidates), log-probs and the exact per-row KL.
    /// Greedy rows (T = 0) take the argmax of logits + values/beta.
    /// </summary>
    /// <param name="logits">[rows, vocab] raw logits of the base model.</param>
    /// <param name="rows">Number of rows (K), &gt;= 0.</param>
    /// <param name="vocab">Vocabulary size, &gt;= 1.</param>
    /// <param name="candidateIds">[rows, candidates] distinct token ids per row, in any order; empty = the full
    /// vocabulary (then candidates must equal vocab).</param>
    /// <param name="candidates">Candidates per row (c).</param>
    /// <param name="values">[rows, candidates] V of the prefix extended by each candidate (-inf masks a candidate);
    /// empty = no tilt.</param>
    /// <param name="beta">[rows] tilt strength, &gt; 0; +inf = no tilt. Required when values are given.</param>
    /// <param name="parameters">[rows] temperature / top-k / top-p, applied to the tilted scores.</param>
    /// <param name="keys">[rows] random streams.</param>
    /// <param name="tokens">[rows] out: sampled token ids.</param>
    /// <param name="baseLogProb">[rows] out: log p(token), softmax of the logits at T = 1 over the full vocabulary.</param>
    /// <param name="tiltedLogProb">[rows] out: log pi(token) under the distribution sampled from (0 for greedy rows).</param>
    /// <param name="kl">[rows] out: KL(pi || p) = sum over survivors of pi log(pi / p), exact; for greedy rows
    /// -log p(token). Empty = not computed.</param>
    void TiltedStep(ReadOnlySpan<float> logits, int rows, int vocab,
        ReadOnlySpan<int> candidateIds, int candidates, ReadOnlySpan<float> values, ReadOnlySpan<float> beta,
        ReadOnlySpan<SamplingParameters> parameters, ReadOnlySpan<RngKey> keys,
        Span<int> tokens, Span<float> baseLogProb, Span<float> tiltedLogProb, Span<float> kl);

    /// <summary>
    /// The top-N pass of per-token log-probabilities, on the rows that ask for it: for each listed row of
    /// <paramref name="logits"/>, the n most likely tokens at T = 1 over the full vocabulary and their log-probabilities in
    /// float64, most likely first (<see cref="Kernels.TopLogProbs"/>).
    /// </summary>
    /// <param name="logits">[rowsInMatrix, vocab] raw logits.</param>
    /// <param name="vocab">Vocabulary size.</param>
    /// <param name="rows">[k] rows to scan.</param>
    /// <param name="n">Tokens per row, 1..20.</param>
    /// <param name="ids">[k, n] out: token ids (-1 past a row's possible tokens).</param>
    /// <param name="logProbs">[k, n] out: log p of each (-inf past a row's possible tokens).</param>
    /// <param name="tokens">[k] optional: a given token per row (teacher forcing), -1 = none; empty = none at all.</param>
    /// <param name="tokenLogProbs">[k] out with tokens: log p of each row's given token, float64 (NaN for -1).</param>
    void TopLogProbs(ReadOnlySpan<float> logits, int vocab, ReadOnlySpan<int> rows, int n, Span<int> ids, Span<double> logProbs,
        ReadOnlySpan<int> tokens = default, Span<double> tokenLogProbs = default);

    /// <summary>V for a batch of hidden states with one head: values[k] = head(hidden[k, :]).</summary>
    /// <param name="head">The head; its weights are uploaded once per backend and reused.</param>
    /// <param name="hidden">[rows, d] final hidden states.</param>
    /// <param name="rows">K.</param>
    /// <param name="values">[rows] out.</param>
    void ScoreValues(ValueHead head, ReadOnlySpan<float> hidden, int rows, Span<float> values);

    /// <summary>V = sum_i weights[k, i] V_i(hidden[k, :]) for several objectives (docs/math.md [M22]).</summary>
    /// <param name="heads">The objectives' heads.</param>
    /// <param name="hidden">[rows, d] final hidden states.</param>
    /// <param name="rows">K.</param>
    /// <param name="weights">[rows, heads] per-row objective weights.</param>
    /// <param name="values">[rows] out.</param>
    void ScoreValues(MultiObjectiveValueHead heads, ReadOnlySpan<float> hidden, int rows, ReadOnlySpan<float> weights, Span<float> values);
}
