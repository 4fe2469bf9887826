using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Interop;

/// <summary>
/// A loaded model with its step kernels. The C handle holds one reference and every request created on the model
/// holds one, so tilt_model_free while a request still exists only drops the handle; the last release disposes.
/// </summary>
internal sealed class ModelHandle(ILanguageModel model, IStepKernels kernels) : HandleObject
{
    private int _references = 1;

    public override string KindName => "tilt_model";

    public ILanguageModel Model { get; } = model;

    public IStepKernels Kernels { get; } = kernels;

    /// <summary>
    /// Held for the whole of a run: the step kernels keep per-call scratch state, so runs on one model take turns
    /// (llama.cpp serializes decodes process-wide anyway).
    /// </summary>
    public Lock RunGate { get; } = new();

    public void AddReference() => Interlocked.Increment(ref _references);

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0) return;
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
