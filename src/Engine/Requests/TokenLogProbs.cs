namespace Tilt.Engine.Requests;

/// <summary>
/// One output token with log p(token | prefix) under the base model at temperature 1 over the full vocabulary (the terms
/// of <see cref="AlignedSample.LogProb"/>, which is their sum over the sampled tokens), reported on
/// <see cref="DecodingOptions.Logprobs"/>.
/// </summary>
/// <param name="Token">The token id.</param>
/// <param name="LogProb">log p(token | prefix) at T = 1 (from the sampling kernel, float precision); NaN for a forced-prefix
/// token, which was not sampled.</param>
public sealed record TokenLogProb(int Token, double LogProb)
{
    /// <summary>
    /// The log-probability of the token under the distribution it was actually drawn from, where that differs from p:
    /// the tempered/filtered sampler, or token-wise CD's tilted policy [M14]; NaN where the sampler is p itself.
    /// </summary>
    public double SamplerLogProb { get; init; } = double.NaN;

    /// <summary>
    /// The <see cref="DecodingOptions.TopLogprobs"/> most likely tokens of the same row (log p at T = 1, float64),
    /// most likely first; empty when none were asked for.
    /// </summary>
    public IReadOnlyList<TopLogProb> Top { get; init; } = [];
}

/// <summary>An alternative token of a row and its log p(token | prefix) at T = 1.</summary>
public readonly record struct TopLogProb(int Token, double LogProb);
