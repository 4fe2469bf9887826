using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Strategies;

/// <summary>
/// Token-wise controlled decoding [M14]. Each step takes the top-k candidate tokens of p(.|prefix), feeds each as one token
/// of a forked sequence in ONE batched decode, scores every candidate's hidden state with the value function, tilts p by
/// exp(V/beta) over the candidate set and samples (one fused kernel call). The sampled candidate's sequence already holds
/// the chosen token and its next logits, so it becomes the prefix and the others are dropped. Candidates that are stop
/// tokens are not decoded; their value is that of the finished text.
/// <para>
/// The tilt is renormalized over the k candidates: with k &lt; vocabulary size tokens outside the top-k of p are never
/// chosen (the documented approximation of [M14]); k = 0 means the whole vocabulary, exact for small models. More than 255
/// candidates do not fit one llama.cpp context's sequences, so they are decoded in several batches and the chosen token is
/// decoded once more on the prefix. KL is the exact per-step drift KL(pi(.|s_t) || p(.|s_t)) summed over the steps [M15].
/// Each call runs on an engine of its own; a service shares one <see cref="DecodingEngine"/> per model.
/// </para>
/// </summary>
public sealed class TokenwiseDecoder
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly IValueFunction _value;
    private readonly IReward _reward;

    /// <param name="value">V(prefix + candidate) used for the tilt.</param>
    /// <param name="reward">The reward reported for each finished output.</param>
    public TokenwiseDecoder(ILanguageModel model, IStepKernels kernels, IValueFunction value, IReward reward)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        _value = value ?? throw new ArgumentNullException(nameof(value));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
    }

    public Task<IReadOnlyList<AlignedSample>> GenerateAsync(string prompt, TokenwiseOptions options, CancellationToken cancellationToken = default) =>
        AlignStream.CollectAsync(StreamAsync(prompt, options, cancellationToken));

    /// <summary>Streams each accepted token with the candidates' values and the running KL.</summary>
    public IAsyncEnumerable<AlignEvent> StreamAsync(string prompt, TokenwiseOptions options, CancellationToken cancellationToken = default) =>
        SingleRequest.StreamAsync(_model, _kernels, new DecodingRequest { Prompt = prompt, Options = options, Reward = _reward, Value = _value }, cancellationToken);
}
