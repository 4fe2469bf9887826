using Tilt.Engine.Heads;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Decoding;

/// <summary>The value evaluations of an iteration: one batched kernel call per trained head, the other values one request at a time.</summary>
internal sealed partial class StepBatch
{
    /// <summary>
    /// Queues values[i] = V(prefix i) for <paramref name="count"/> prefixes whose hidden states are <paramref name="hidden"/>
    /// ([count, d], copied now). Trained heads of every request are scored together, one kernel call per head.
    /// </summary>
    public void AddValues(object owner, IValueFunction value, IReadOnlyList<RewardInput>? inputs, ReadOnlySpan<float> hidden, int count, double[] destination)
    {
        _values.Add(new ValueRequest(owner, value, inputs, hidden[..(count * _hidden)].ToArray(), count, destination));
    }

    /// <summary>
    /// Evaluates every queued value: trained heads batched across requests through the step kernels; reward-backed values
    /// (those that read text) of runs that can wait are started on <paramref name="scoring"/> (the run waits for its job, and
    /// is added to <paramref name="started"/>);
    /// the others one request at a time here. Returns the owners whose evaluation failed, with the error (the others are
    /// unaffected).
    /// </summary>
    public List<(object Owner, Exception Error)> EvaluateValues(IStepKernels kernels, ScoringStage? scoring = null, List<RequestRun>? started = null)
    {
        var failures = new List<(object, Exception)>();
        if (_values.Count == 0) return failures;
        foreach (var byHead in _values.Where(v => v.Value is HeadValue).GroupBy(v => ((HeadValue)v.Value).Head))
        {
            try
            {
                ScoreHead(kernels, byHead.Key, byHead.ToList());
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                foreach (var v in byHead) failures.Add((v.Owner, e));
            }
        }
        foreach (var v in _values)
        {
            if (v.Value is HeadValue) continue;
            if (scoring is not null && v.Value.NeedsInputs && v.Owner is RequestRun { CanPark: true } run)
            {
                run.Await(scoring.Start(() => v.Value.Evaluate(v.Inputs, v.Hidden, v.Count, v.Destination.AsSpan(0, v.Count))));
                started?.Add(run);
                continue;
            }
            try
            {
                v.Value.Evaluate(v.Value.NeedsInputs ? v.Inputs : null, v.Hidden, v.Count, v.Destination.AsSpan(0, v.Count));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                failures.Add((v.Owner, e));
            }
        }
        return failures;
    }

    private void ScoreHead(IStepKernels kernels, ValueHead head, List<ValueRequest> group)
    {
        {
            int rows = group.Sum(v => v.Count);
            var hidden = new float[rows * _hidden];
            int at = 0;
            foreach (var v in group)
            {
                v.Hidden.CopyTo(hidden.AsSpan(at * _hidden));
                at += v.Count;
            }
            var scores = new float[rows];
            kernels.ScoreValues(head, hidden, rows, scores);
            at = 0;
            foreach (var v in group)
            {
                for (int i = 0; i < v.Count; i++) v.Destination[i] = scores[at + i];
                at += v.Count;
            }
        }
    }

    private sealed record ValueRequest(object Owner, IValueFunction Value, IReadOnlyList<RewardInput>? Inputs, float[] Hidden, int Count, double[] Destination);
}
