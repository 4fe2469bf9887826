using System.Diagnostics;
using Tilt.Engine.Rewards;
using Tilt.Engine.Requests;
using Tilt.Engine.Values;

namespace Tilt.Engine.Decoding;

/// <summary>
/// What blockwise CD and beam search share: each step draws a set of candidate blocks in one rollout, queues their values
/// when every block is complete (batched with the other requests' values), and on the next <see cref="Propose"/> lets the
/// strategy choose (<see cref="OnScored"/>) before the next blocks are sampled. The strategy loads the prompt and starts
/// each step; this class runs the hooks between.
/// </summary>
internal abstract class BlockSearchRun : RequestRun
{
    protected BlockSearchRun(DecodingRequest request, int[] promptTokens, Stopwatch clock, CancellationToken cancellation, int k)
        : base(request, promptTokens, clock, cancellation)
    {
        Reward = request.Reward!;
        Value = request.Value ?? new PrefixRewardValue(Reward);
        K = k;
    }

    protected IReward Reward { get; }
    protected IValueFunction Value { get; }

    /// <summary>Candidate blocks per step (the sequences the request holds).</summary>
    protected int K { get; }

    protected ContinuationBatch? Rollout { get; set; }

    /// <summary>The output being written (0-based).</summary>
    protected int SampleIndex;

    /// <summary>True when the next <see cref="RequestRun.Prepare"/> must load the prompt (a new output begins).</summary>
    protected bool NeedPrompt = true;

    /// <summary>[K] the values of the step's blocks once scored.</summary>
    protected double[] Scores = [];

    // The values of a complete set of blocks are queued this iteration.
    private bool _scoring;

    public override int SequencesNeeded => K;

    // Blocks wait for their values with everything they need in hand (texts, final logits and hidden states are copies).
    public override bool CanPark => true;

    /// <summary>Blocks in the current step (K, or fewer when the beams alive do not divide it).</summary>
    protected abstract int StepCandidates { get; }

    /// <summary>The value's input for block <paramref name="i"/>: the whole response so far with that block.</summary>
    protected abstract RewardInput ValueInput(ContinuationBatch rollout, int i);

    /// <summary>The step's values are in <see cref="Scores"/>: keep, stream, finish or start the next step.</summary>
    protected abstract void OnScored(StepContext context);

    public override void Plan(StepContext context)
    {
        if (!_scoring && !IsDone && !NeedPrompt) Rollout?.Plan(context.Batch);
    }

    public override void Score(StepContext context)
    {
        var rollout = Rollout;
        if (rollout is null || IsDone || NeedPrompt || _scoring) return;
        rollout.Collect(context);
        if (!rollout.IsFinished) return;

        // Every block of the step is complete: queue their values (batched with the other requests' values).
        _scoring = true;
        int n = StepCandidates;
        IReadOnlyList<RewardInput>? inputs = Value.NeedsInputs ? [.. Enumerable.Range(0, n).Select(i => ValueInput(rollout, i))] : null;
        context.Batch.AddValues(this, Value, inputs, rollout.FinalHidden.AsSpan(0, n * context.Hidden), n, Scores);
    }

    public override void Propose(StepContext context)
    {
        if (IsDone || NeedPrompt) return;
        if (_scoring)
        {
            _scoring = false;
            OnScored(context);
            if (IsDone || NeedPrompt) return;
        }
        Rollout!.Propose(context);
    }

    public override void Advance(StepContext context)
    {
        if (IsDone || NeedPrompt) return;
        Rollout!.Advance(context.Batch);
    }
}
