using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Requests;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Tests;

/// <summary>One request on an engine sized for it (<see cref="DecodingEngine.RunOnOwnEngineAsync"/>), spelled shortly.</summary>
internal static class OwnEngine
{
    public static Task<IReadOnlyList<AlignedSample>> Run(ILanguageModel model, IStepKernels kernels, string prompt, DecodingOptions options,
        IReward? reward = null, IValueFunction? value = null, CancellationToken cancellationToken = default, KvCacheType kv = KvCacheType.F16) =>
        DecodingEngine.RunOnOwnEngineAsync(model, kernels, new DecodingRequest { Prompt = prompt, Options = options, Reward = reward, Value = value },
            new ContextSettings(KvCacheType: kv), cancellationToken);

    public static IAsyncEnumerable<AlignEvent> Stream(ILanguageModel model, IStepKernels kernels, string prompt, DecodingOptions options,
        IReward? reward = null, IValueFunction? value = null, CancellationToken cancellationToken = default, KvCacheType kv = KvCacheType.F16) =>
        DecodingEngine.StreamOnOwnEngine(model, kernels, new DecodingRequest { Prompt = prompt, Options = options, Reward = reward, Value = value },
            new ContextSettings(KvCacheType: kv), cancellationToken);
}
