using System.Runtime.ExceptionServices;

namespace Tilt.Engine.Decoding;

/// <summary>A request's side of the scoring stage: the job it waits for, and parking while it does (docs/architecture.md).</summary>
internal abstract partial class RequestRun
{
    private ScoringJob? _job;

    /// <summary>
    /// True while a scoring job of this run is in flight (<see cref="ScoreAside"/>, or a reward-backed value the batch sent to
    /// the <see cref="ScoringStage"/>): the scheduler calls none of its hooks until it is done.
    /// </summary>
    public bool IsWaiting => _job is { Task.IsCompleted: false };

    /// <summary>True when a scoring job has ended and <see cref="Resume"/> has not applied it yet.</summary>
    public bool HasScoringResult => _job is { Task.IsCompleted: true };

    /// <summary>
    /// Scores off the scheduler's thread: <paramref name="work"/> runs on a scoring thread (it may read what the run built for
    /// it, and write only its own result arrays); <paramref name="then"/> runs on the scheduler's thread once it is done, before
    /// any other hook of this run.
    /// </summary>
    protected void ScoreAside(StepContext context, Action work, Action<StepContext>? then = null) => Await(context.Scoring.Start(work), then);

    /// <summary>Makes the run wait for <paramref name="job"/> (one at a time).</summary>
    public void Await(Task job, Action<StepContext>? then = null)
    {
        if (_job is not null) throw new InvalidOperationException("the request already waits for a scoring job");
        _job = new ScoringJob(job, then);
    }

    /// <summary>Blocks up to <paramref name="timeout"/> for the job in flight (its failure is seen at <see cref="Resume"/>).</summary>
    public void WaitForScoring(TimeSpan timeout)
    {
        if (_job is not { } job) return;
        try
        {
            job.Task.Wait(timeout);
        }
        catch (AggregateException)
        {
            // Resume rethrows it on the scheduler's terms.
        }
    }

    /// <summary>The scheduler's side of a finished job: rethrows its failure, or applies its result.</summary>
    public void Resume(StepContext context)
    {
        var job = _job ?? throw new InvalidOperationException("no scoring job to resume");
        _job = null;
        if (job.Task.Exception is { } failure) ExceptionDispatchInfo.Throw(failure.InnerExceptions.Count == 1 ? failure.InnerExceptions[0] : failure);
        job.Then?.Invoke(context);
    }

    /// <summary>
    /// True when the run can wait for its values past this iteration (<see cref="Park"/>); false makes the scheduler compute
    /// them on its own thread, as every value was before the scoring stage.
    /// </summary>
    public virtual bool CanPark => false;

    /// <summary>
    /// The scheduler moves on without this run's values: keep what its later hooks read from this iteration's decode
    /// (logits rows), which the next decode overwrites.
    /// </summary>
    public virtual void Park(StepContext context)
    {
    }
}
