namespace Tilt.Kernels;

/// <summary>
/// What every backend's step shares: the shape checks of <see cref="SampleBase"/> and <see cref="TiltedStep"/> before
/// their one fused pass (base sampling is the tilted step with every token a candidate and no values), the top-N pass
/// and the combination of several heads. A backend supplies the fused pass (<see cref="Execute"/>) and one head's scoring
/// (<see cref="Score"/>).
/// </summary>
internal abstract class FusedStepKernels : IStepKernels
{
    public abstract string Name { get; }

    public void SampleBase(ReadOnlySpan<float> logits, int rows, int vocab,
        ReadOnlySpan<SamplingParameters> parameters, ReadOnlySpan<RngKey> keys,
        Span<int> tokens, Span<float> baseLogProb, Span<float> samplerLogProb)
    {
        Validation.SampleBase(logits.Length, rows, vocab, parameters, keys.Length, tokens.Length, baseLogProb.Length, samplerLogProb.Length);
        if (rows > 0) Execute(logits, rows, vocab, default, vocab, default, default, parameters, keys, tokens, baseLogProb, samplerLogProb, default);
    }

    // Rows that ask for alternatives are few (a request's own rows) and the logits are host spans on every backend, so
    // the pass runs on the calling thread: one O(vocab) scan per asking row, small against a device round trip.
    public void TopLogProbs(ReadOnlySpan<float> logits, int vocab, ReadOnlySpan<int> rows, int n, Span<int> ids, Span<double> logProbs,
        ReadOnlySpan<int> tokens = default, Span<double> tokenLogProbs = default) =>
        Kernels.TopLogProbs.Compute(logits, vocab, rows, n, ids, logProbs, tokens, tokenLogProbs);

    public void TiltedStep(ReadOnlySpan<float> logits, int rows, int vocab,
        ReadOnlySpan<int> candidateIds, int candidates, ReadOnlySpan<float> values, ReadOnlySpan<float> beta,
        ReadOnlySpan<SamplingParameters> parameters, ReadOnlySpan<RngKey> keys,
        Span<int> tokens, Span<float> baseLogProb, Span<float> tiltedLogProb, Span<float> kl)
    {
        Validation.TiltedStep(logits.Length, rows, vocab, candidateIds.Length, candidates, values.Length, beta, parameters,
            keys.Length, tokens.Length, baseLogProb.Length, tiltedLogProb.Length, kl.Length);
        if (rows > 0) Execute(logits, rows, vocab, candidateIds, candidates, values, beta, parameters, keys, tokens, baseLogProb, tiltedLogProb, kl);
    }

    public void ScoreValues(ValueHead head, ReadOnlySpan<float> hidden, int rows, Span<float> values)
    {
        ArgumentNullException.ThrowIfNull(head);
        Validation.Shape(rows, head.InputSize, hidden.Length, nameof(hidden));
        Validation.Rows(rows, values.Length, nameof(values));
        if (rows > 0) Score(head, hidden, rows, values);
    }

    public void ScoreValues(MultiObjectiveValueHead heads, ReadOnlySpan<float> hidden, int rows, ReadOnlySpan<float> weights, Span<float> values)
    {
        ArgumentNullException.ThrowIfNull(heads);
        Validation.Shape(rows, heads.Heads.Count, weights.Length, nameof(weights));
        Validation.Rows(rows, values.Length, nameof(values));
        Span<float> perHead = heads.PerHead(rows);
        for (int i = 0; i < heads.Heads.Count; i++)
            ScoreValues(heads.Heads[i], hidden, rows, perHead.Slice(i * rows, rows));
        heads.Combine(perHead, rows, weights, values);
    }

    /// <summary>One head's values of rows &gt; 0 hidden states, shapes checked.</summary>
    protected abstract void Score(ValueHead head, ReadOnlySpan<float> hidden, int rows, Span<float> values);

    /// <summary>
    /// The fused pass over validated shapes and rows &gt; 0. Dense (<paramref name="candidateIds"/> empty): every token of the row is a
    /// candidate; no values: plain base sampling, where <paramref name="tiltedLogProb"/> receives the sampler's log-prob.
    /// </summary>
    protected abstract void Execute(ReadOnlySpan<float> logits, int rows, int vocab,
        ReadOnlySpan<int> candidateIds, int candidates, ReadOnlySpan<float> values, ReadOnlySpan<float> beta,
        ReadOnlySpan<SamplingParameters> parameters, ReadOnlySpan<RngKey> keys,
        Span<int> tokens, Span<float> baseLogProb, Span<float> tiltedLogProb, Span<float> kl);

    public abstract void Dispose();
}
