using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Where rewards and reward-backed values are computed: beside the scheduler, on <see cref="EngineOptions.ScoringThreads"/>
/// threads of its own (at a lower priority than the decode loop), so that a slow reward (a regex that
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
internal sealed class ScoringStage : IDisposable
{
    // Scoring threads run at this nice value (Linux): the decode loop, which every request shares, wins the CPU from one
    // request's reward whenever it wants it, and the reward gets every cycle the loop leaves (all of them while the loop
    // waits for scores). On a 2-core machine a backtracking regex otherwise took a core from llama.cpp's workers.
    private const int Nice = 10;

    private readonly BlockingCollection<(Action Work, TaskCompletionSource Done)>? _jobs; // null: jobs run inline
    private readonly Action _completed;

    /// <param name="threads">Jobs that may run at once; 0 runs each where it is started (the scheduler's thread).</param>
    /// <param name="completed">Called (on the job's thread) after each job ends, to wake the scheduler.</param>
    public ScoringStage(int threads, Action completed)
    {
        _completed = completed;
        if (threads == 0) return;
        _jobs = new BlockingCollection<(Action, TaskCompletionSource)>();
        for (int i = 0; i < threads; i++) new Thread(Serve) { IsBackground = true, Name = $"tilt-scoring-{i}" }.Start();
    }

    /// <summary>Jobs started so far, and those the scheduler had to move on without (their request was parked).</summary>
    public long Started => Interlocked.Read(ref _started);

    public long Parked => Interlocked.Read(ref _parked);

    private long _started, _parked;

    /// <summary>Starts <paramref name="work"/> on a scoring thread (or runs it now when the stage is inline).</summary>
    public Task Start(Action work)
    {
        Interlocked.Increment(ref _started);
        if (_jobs is null)
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
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _jobs.Add((work, done));
        return done.Task;
    }

    internal void CountParked() => Interlocked.Increment(ref _parked);

    /// <summary>No more jobs; the threads end after the one they run (a request's reward is not interrupted).</summary>
    public void Dispose() => _jobs?.CompleteAdding();

    private void Serve()
    {
        LowerPriority();
        foreach (var (work, done) in _jobs!.GetConsumingEnumerable())
        {
            try
            {
                work();
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
            _completed();
        }
    }

    private static void LowerPriority()
    {
        if (!OperatingSystem.IsLinux()) return; // elsewhere thread priorities need privileges or other calls; run as is
        try
        {
            // Linux keeps a nice value per thread: PRIO_PROCESS with a thread id changes that thread only.
            _ = SetPriority(0, GetThreadId(), Nice);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // An old libc without gettid(): scoring runs at the loop's priority.
        }
    }

    [DllImport("libc", EntryPoint = "setpriority")]
    private static extern int SetPriority(int which, int who, int priority);

    [DllImport("libc", EntryPoint = "gettid")]
    private static extern int GetThreadId();
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
