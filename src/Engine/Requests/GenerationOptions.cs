using Tilt.Engine.Models;

namespace Tilt.Engine.Requests;

/// <summary>Options of a base-model generation request.</summary>
public sealed record GenerationOptions : DecodingOptions
{
    /// <summary>Parallel samples (K), decoded as one batch that shares the prompt's KV cache. 1..256. Defaults to 1.</summary>
    public int Samples { get; init => field = SessionOptions.CheckSequences(value, nameof(Samples), "the number of samples"); } = 1;

    /// <summary>
    /// 0 (the default): no hidden states. s &gt; 0: each output also carries the final hidden state (after the last norm) of
    /// its prefix after the prompt and after every s-th generated token (<see cref="AlignedSample.HiddenPositions"/>,
    /// <see cref="AlignedSample.HiddenStates"/>) and of its whole text (<see cref="AlignedSample.FinalHidden"/>; a sample cut
    /// by the limit has its last token decoded for it): the features value heads are trained on (docs/training.md).
    /// </summary>
    public int HiddenStateStride
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(HiddenStateStride), value, $"the hidden-state stride must be >= 0, got {value}");
    }

    /// <summary>
    /// The RNG row of sample 0 (sample i draws from row FirstRow + i): training spreads one seeded set of rollouts over
    /// several requests and keeps rollout j on row j. Defaults to 0.
    /// </summary>
    internal uint FirstRow { get; init; }
}
