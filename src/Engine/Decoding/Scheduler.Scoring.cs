using System.Diagnostics;

namespace Tilt.Engine.Decoding;

/// <summary>The scheduler's side of the scoring stage (docs/architecture.md, "Scoring stage").</summary>
internal sealed partial class Scheduler
{
    /// <summary>Scores that came back since the last iteration: each run applies its own on this thread, before its next hook.</summary>
    private void ApplyScores()
    {
        foreach (var run in _running)
        {
            if (run.HasScoringResult) Guarded(run, Resume);
        }
        ReleaseFailed();
    }

    private static readonly Action<RequestRun, StepContext> Resume = (run, context) => run.Resume(context);
    private static readonly Action<RequestRun, StepContext> Park = (run, context) => run.Park(context);

    /// <summary>A scoring job ended, or a running request was cancelled: the loop may have work again.</summary>
    private void Wake()
    {
        lock (_gate) Monitor.PulseAll(_gate);
    }

    /// <summary>True when every running request waits for a scoring job (and none was cancelled, which the loop must drop).</summary>
    private bool AllWaiting()
    {
        if (_cancelAll) return false;
        foreach (var run in _running)
            if (!run.IsWaiting || run.Cancellation.IsCancellationRequested) return false;
        return true;
    }

    /// <summary>
    /// Waits up to the patience for the values started in this iteration; a run whose value is done goes on in this iteration,
    /// the others are parked (they keep what they need of this decode) and the loop moves on without them.
    /// </summary>
    private void AwaitScoring()
    {
        if (_startedScoring.Count == 0) return;

        var patience = _options.ScoringPatience;
        long deadline = Stopwatch.GetTimestamp() + (long)(patience.TotalSeconds * Stopwatch.Frequency);
        foreach (var run in _startedScoring)
        {
            if (!_running.Contains(run)) continue; // failed meanwhile
            long left = deadline - Stopwatch.GetTimestamp();
            if (run.IsWaiting && left > 0) run.WaitForScoring(TimeSpan.FromSeconds((double)left / Stopwatch.Frequency));
            bool waiting = run.IsWaiting; // read once: the job may end between two reads
            if (waiting) _scoring.CountParked();
            Guarded(run, waiting ? Park : Resume);
        }
        _startedScoring.Clear();
        ReleaseFailed();
    }
}
