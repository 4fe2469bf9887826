using System.Runtime.ExceptionServices;

namespace Tilt.Kernels.Cpu;

/// <summary>
/// A fork-join over rows on persistent threads that allocates nothing per call (Parallel.For allocates its
/// closure, tasks and partition state every call). The calling thread works as worker 0; helpers take rows
/// from a shared counter, so uneven rows balance themselves.
/// </summary>
internal sealed class RowScheduler : IDisposable
{
    private readonly Thread[] _helpers;
    private readonly SemaphoreSlim _start = new(0);
    private Action<int, int>? _body;
    private int _count;
    private int _next;
    private int _pending;
    private Exception? _error;
    private volatile bool _disposed;

    public RowScheduler(int workers)
    {
        _helpers = new Thread[Math.Max(0, workers - 1)];
        for (int i = 0; i < _helpers.Length; i++)
        {
            int index = i + 1;
            _helpers[i] = new Thread(() => HelperLoop(index)) { IsBackground = true, Name = $"tilt-kernels-{index}" };
            _helpers[i].Start();
        }
    }

    /// <summary>Number of workers including the calling thread; worker indices are 0..WorkerCount-1.</summary>
    public int WorkerCount => _helpers.Length + 1;

    /// <summary>Runs body(row, worker) for row in [0, count) on up to <paramref name="maxWorkers"/> workers.</summary>
    /// <remarks><paramref name="body"/> must be a cached delegate, or the call allocates it.</remarks>
    public void Run(int count, int maxWorkers, Action<int, int> body)
    {
        int helpers = Math.Min(Math.Min(_helpers.Length, count - 1), maxWorkers - 1);
        if (helpers <= 0)
        {
            for (int i = 0; i < count; i++)
                body(i, 0);
            return;
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        _body = body;
        _count = count;
        _next = -1;
        _error = null;
        _pending = helpers + 1;
        _start.Release(helpers);
        Work(0);
        if (Interlocked.Decrement(ref _pending) != 0)
        {
            // The caller took rows until none were left, so the helpers are at most one row behind: spin briefly
            // instead of blocking (ManualResetEventSlim lazily allocates its lock object on the first real block).
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0)
                spin.SpinOnce(sleep1Threshold: -1);
        }
        _body = null;
        if (_error is not null)
            ExceptionDispatchInfo.Throw(_error);
    }

    private void Work(int worker)
    {
        try
        {
            int row;
            while ((row = Interlocked.Increment(ref _next)) < _count)
                _body!(row, worker);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _error, e, null);
            _next = int.MaxValue - 1024; // stop handing out rows
        }
    }

    private void HelperLoop(int index)
    {
        while (true)
        {
            _start.Wait();
            if (_disposed)
                return;
            Work(index);
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (_helpers.Length > 0)
            _start.Release(_helpers.Length);
        foreach (var t in _helpers)
            t.Join();
        _start.Dispose();
    }
}
