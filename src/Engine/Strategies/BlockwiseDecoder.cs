using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Strategies;

/// <summary>
/// Blockwise controlled decoding [M18] ("best-of-n++"): from the current prefix, K candidate blocks of M tokens are drawn
/// from p in parallel (one decode call per token over all K), each block is scored by the value of its last hidden state
/// (or by the reward when it finished the text), the best block is kept (or one is sampled ∝ exp(V/beta)), streamed to the
/// caller, and its KV cache becomes every sequence's prefix. With M at least the whole response and argmax selection this
/// is exactly best-of-K with the value as reward [M18]. KL per block is bounded by log K - (K-1)/K and estimated by KLhat
/// with eps = p(block | prefix) [M19]. Each call runs on an engine of its own; a service shares one
/// <see cref="DecodingEngine"/> per model.
/// </summary>
public sealed class BlockwiseDecoder
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly IValueFunction _value;
    private readonly IReward _reward;

    /// <param name="value">V(prefix + block) used to pick blocks that do not finish the text.</param>
    /// <param name="reward">Scores blocks that finish the text, and every returned output.</param>
    public BlockwiseDecoder(ILanguageModel model, IStepKernels kernels, IValueFunction value, IReward reward)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        _value = value ?? throw new ArgumentNullException(nameof(value));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
    }

    public Task<IReadOnlyList<AlignedSample>> GenerateAsync(string prompt, BlockwiseOptions options, CancellationToken cancellationToken = default) =>
        AlignStream.CollectAsync(StreamAsync(prompt, options, cancellationToken));

    /// <summary>Streams every accepted block with the candidates' scores and the running KL estimate.</summary>
    public IAsyncEnumerable<AlignEvent> StreamAsync(string prompt, BlockwiseOptions options, CancellationToken cancellationToken = default) =>
        SingleRequest.StreamAsync(_model, _kernels, new DecodingRequest { Prompt = prompt, Options = options, Reward = _reward, Value = _value }, cancellationToken);
}
