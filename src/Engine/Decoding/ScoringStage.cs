namespace Tilt.Engine.Decoding;

/// <summary>
/// Where rewards and reward-backed values are computed: beside the scheduler, on at most
/// <see cref="EngineOptions.ScoringThreads"/> thread-pool threads at once, so that a slow reward (a regex that
/// backtracks, an ONNX or LLM reward model, a host callback) delays only the request that waits for it while every
/// other request keeps decoding. The scheduler waits for a job it has just started up to its patience (a job about as
/// long as a decode finishes in step, and fast rewards cost no extra iteration); past it, the request is parked until
/// its job completes. Results equal on-thread scoring's: a job computes what the run would have computed, and every
/// random draw is keyed by the request, never by timing.
/// <para>
/// Rewards shared by several requests may be called from several scoring threads at once (for different requests;
/// one request's jobs never overlap): built-in rewards are thread-safe; a host's own <c>IReward</c> shared by requests
/// must be too, or the engine must run with one scoring thread.
/// </para>
/// </summary>
internal sealed class ScoringStage
{
    private readonly TaskScheduler? _scheduler; // null: jobs run inline, on the scheduler's thread
    private readonly Action _completed;

    /// <param name="threads">Jobs that may run at once; 0 runs each where it is started (the scheduler's thread).</param>
    /// <param name="completed">Called (on the job's thread) after each job ends, to wake the scheduler.</param>
    public ScoringStage(int threads, Action completed)
    {
        _scheduler = threads == 0 ? null : new ConcurrentExclusiveSchedulerPair(TaskScheduler.Default, threads).ConcurrentScheduler;
        _completed = completed;
    }

    /// <summary>Jobs started so far, and those the scheduler had to move on without (their request was parked).</summary>
    public long Started => Interlocked.Read(ref _started);

    public long Parked => Interlocked.Read(ref _parked);

    private long _started, _parked;

    /// <summary>Starts <paramref name="work"/> on a scoring thread.</summary>
    public Task Start(Action work)
    {
        Interlocked.Increment(ref _started);
        if (_scheduler is null)
        {
            try
            {
                work();
                return Task.CompletedTask;
            }
            catch (Exception e)
            {
                return Task.FromException(e);
            }
        }
        var task = Task.Factory.StartNew(work, CancellationToken.None, TaskCreationOptions.DenyChildAttach, _scheduler);
        task.ContinueWith(static (_, state) => ((Action)state!)(), _completed, CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return task;
    }

    internal void CountParked() => Interlocked.Increment(ref _parked);
}

/// <summary>
/// A request's scoring in flight: the job on a scoring thread, and what the request does with its result on the scheduler's
/// thread once it is done (emit, pick a winner, free sequences), so a run's state is only ever changed by the scheduler.
/// </summary>
internal sealed class ScoringJob(Task task, Action<StepContext>? then)
{
    public Task Task { get; } = task;

    public Action<StepContext>? Then { get; } = then;
}
