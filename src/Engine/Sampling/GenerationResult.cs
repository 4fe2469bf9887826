namespace Tilt.Engine.Sampling;

/// <summary>Why a sample stopped.</summary>
public enum FinishReason
{
    /// <summary>The model produced its end-of-sequence token (or another stop token, see <see cref="Models.ModelInfo.StopTokens"/>).</summary>
    Eos,

    /// <summary>The sample reached the token limit.</summary>
    Length,

    /// <summary>A stop string or stop token id of the request ended the sample (<see cref="DecodingOptions.Stop"/>).</summary>
    Stop,
}

/// <summary>One finished sample.</summary>
/// <param name="Index">The sample's index in the request (its RNG row).</param>
/// <param name="Tokens">Generated token ids, the stop token included when the sample ended with one.</param>
/// <param name="Text">Detokenized text (EOS prints nothing).</param>
/// <param name="LogProb">log p(y|x) under the base model at temperature 1 over the full vocabulary: the
/// sum of the per-token log-probabilities, EOS included (what KL estimates need).</param>
/// <param name="SamplerLogProb">log-probability of y under the tempered/filtered distribution it was sampled
/// from (0 for greedy).</param>
/// <param name="Finish">Why it stopped.</param>
public sealed record GeneratedSample(int Index, IReadOnlyList<int> Tokens, string Text, double LogProb, double SamplerLogProb, FinishReason Finish)
{
    /// <summary>Per-token log-probabilities when the options asked for them (<see cref="DecodingOptions.Logprobs"/>); else null.</summary>
    public IReadOnlyList<Strategies.TokenLogProb>? TokenLogProbs { get; init; }
}

/// <summary>Wall-clock costs of a request.</summary>
/// <param name="PromptTokens">Tokens in the prompt.</param>
/// <param name="Prefill">Time to tokenize, set up and prefill the prompt.</param>
/// <param name="Decode">Time of the decoding loop (decode calls and sampling).</param>
/// <param name="Steps">Batched decode calls after the prefill.</param>
/// <param name="GeneratedTokens">Tokens generated over all samples.</param>
public sealed record GenerationTimings(int PromptTokens, TimeSpan Prefill, TimeSpan Decode, int Steps, int GeneratedTokens)
{
    /// <summary>Generated tokens per second of decoding, over all samples.</summary>
    public double TokensPerSecond => Decode > TimeSpan.Zero ? GeneratedTokens / Decode.TotalSeconds : 0;

    /// <summary>Time inside the model's decode calls during <see cref="Decode"/>; the rest is sampling and bookkeeping.</summary>
    public TimeSpan ModelTime { get; init; }
}

/// <summary>All samples of a request, ordered by index, with timings.</summary>
public sealed record GenerationResult(IReadOnlyList<GeneratedSample> Samples, GenerationTimings Timings);

/// <summary>Something that happened during a streamed generation.</summary>
public abstract record GenerationEvent;

/// <summary>A sample gained a token.</summary>
/// <param name="Sample">Sample index.</param>
/// <param name="Token">The token id.</param>
/// <param name="TextDelta">Text completed by this token (may be empty inside a multi-byte character).</param>
/// <param name="LogProb">log p(token | prefix) under the base model.</param>
public sealed record TokenGenerated(int Sample, int Token, string TextDelta, float LogProb) : GenerationEvent;

/// <summary>A sample finished.</summary>
public sealed record SampleFinished(GeneratedSample Sample) : GenerationEvent;

/// <summary>The request finished; the last event of a stream.</summary>
public sealed record GenerationCompleted(GenerationTimings Timings) : GenerationEvent;
