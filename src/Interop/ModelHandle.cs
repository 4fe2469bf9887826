using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Interop;

/// <summary>
/// A loaded model with its step kernels and its one decoding engine, which every request on the model shares, so runs from
/// several threads are decoded in the same batches. The C handle holds one reference and every request created on the
/// model holds one, so tilt_model_free while a request still exists only drops the handle; the last release disposes.
/// </summary>
internal sealed class ModelHandle(ILanguageModel model, IStepKernels kernels) : HandleObject
{
    /// <summary>Sequences of the shared engine: requests wider than this run on an engine of their own.</summary>
    public const int EngineSequences = 64;

    /// <summary>Tokens per sequence of the shared engine (prompt + output), at most the model's context.</summary>
    public const int EngineSequenceLength = 512;

    private readonly Lazy<DecodingEngine> _engine = new(() => new DecodingEngine(model, kernels, new EngineOptions
    {
        MaxSequences = EngineSequences,
        MaxSequenceLength = Math.Max(2, Math.Min(EngineSequenceLength, model.Info.TrainedContextSize + 1)),
    }), LazyThreadSafetyMode.ExecutionAndPublication);

    private int _references = 1;

    public override string KindName => "tilt_model";

    public ILanguageModel Model { get; } = model;

    public IStepKernels Kernels { get; } = kernels;

    /// <summary>The model's engine (its llama context is created on the first request).</summary>
    public DecodingEngine Engine => _engine.Value;

    public void AddReference() => Interlocked.Increment(ref _references);

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0) return;
        if (_engine.IsValueCreated) _engine.Value.Dispose();
        Kernels.Dispose();
        Model.Dispose();
    }

    public override void OnFreed() => Release();
}

/// <summary>A reward; <see cref="ModelFingerprint"/> is set when it reads a model's hidden states (a head).</summary>
internal sealed class RewardHandle(IReward reward, string? modelFingerprint) : HandleObject
{
    public override string KindName => "tilt_reward";

    public IReward Reward { get; } = reward;

    public string? ModelFingerprint { get; } = modelFingerprint;
}

/// <summary>A value function for controlled decoding, tied to the model whose hidden states it reads.</summary>
internal sealed class ValueHandle(IValueFunction value, string modelFingerprint) : HandleObject
{
    public override string KindName => "tilt_value";

    public IValueFunction Value { get; } = value;

    public string ModelFingerprint { get; } = modelFingerprint;
}
