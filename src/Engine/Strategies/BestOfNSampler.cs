using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Kernels;

namespace Tilt.Engine.Strategies;

/// <summary>
/// Best-of-n [M4]: draws n candidates from p as one batch that shares the prompt's KV cache (prefill once, fork, one
/// decode per step over all live candidates), scores the finished candidates with the reward in one call, and returns the
/// highest; ties are broken uniformly at random (from the request's RNG), so the output follows the exact best-of-n
/// distribution [M5]. KL is reported as the estimate KLhat(eps) with eps = p(winner | x) [M9] and the bound
/// log n - (n-1)/n [M7]. Each call runs on an engine of its own; a service shares one <see cref="DecodingEngine"/> per model.
/// </summary>
public sealed class BestOfNSampler
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly IReward _reward;

    public BestOfNSampler(ILanguageModel model, IStepKernels kernels, IReward reward)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
    }

    /// <summary>All outputs; built on <see cref="StreamAsync"/>.</summary>
    public Task<IReadOnlyList<AlignedSample>> GenerateAsync(string prompt, BestOfNOptions options, CancellationToken cancellationToken = default) =>
        AlignStream.CollectAsync(StreamAsync(prompt, options, cancellationToken));

    /// <summary>Streams progress, the candidates' rewards and each winner.</summary>
    public IAsyncEnumerable<AlignEvent> StreamAsync(string prompt, BestOfNOptions options, CancellationToken cancellationToken = default) =>
        SingleRequest.StreamAsync(_model, _kernels, new DecodingRequest { Prompt = prompt, Options = options, Reward = _reward }, cancellationToken);
}
