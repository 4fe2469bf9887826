using System.Collections.Concurrent;

namespace Tilt.Interop;

/// <summary>
/// Runs an async body to completion on the calling thread. The engine's streams start with <c>await Task.Yield()</c>,
/// which without a context would move the rest of the run, and with it every host callback, to a pool thread; C
/// hosts expect their callbacks on the thread that called tilt_request_run (thread-local state, GUI loops, Python
/// thread states), so continuations are queued here and pumped by the caller.
/// </summary>
internal sealed class CallerThreadContext : SynchronizationContext
{
    private readonly BlockingCollection<(SendOrPostCallback Callback, object? State)> _queue = new();

    public override void Post(SendOrPostCallback d, object? state) => _queue.Add((d, state));

    public override void Send(SendOrPostCallback d, object? state) =>
        throw new NotSupportedException("synchronous Send to the caller's thread would deadlock");

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Runs <paramref name="body"/> and pumps its continuations until it completes; rethrows its exception.</summary>
    public static void Run(Func<Task> body)
    {
        var previous = Current;
        using var context = new Pump();
        SetSynchronizationContext(context.Context);
        try
        {
            var task = body();
            task.ContinueWith(static (_, c) => ((CallerThreadContext)c!)._queue.CompleteAdding(), context.Context,
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            foreach (var (callback, state) in context.Context._queue.GetConsumingEnumerable())
                callback(state);
            task.GetAwaiter().GetResult();
        }
        finally
        {
            SetSynchronizationContext(previous);
        }
    }

    private sealed class Pump : IDisposable
    {
        public CallerThreadContext Context { get; } = new();

        public void Dispose() => Context._queue.Dispose();
    }
}
