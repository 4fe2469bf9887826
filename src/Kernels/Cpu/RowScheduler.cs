using System.Runtime.ExceptionServices;

namespace Tilt.Kernels.Cpu;

/// <summary>
/// A fork-join over rows on persistent threads that allocates nothing per call (Parallel.For allocates its
/// closure, tasks and partition state every call). The calling thread works as worker 0; helpers take rows
/// from a shared counter, so uneven rows balance themselves.
/// </summary>
/// <remarks>
/// A helper joins a call through a gate before it takes a row, and the caller closes the gate once it has run out of rows,
/// then waits only for the helpers that joined. A helper the OS has not scheduled yet (the cores busy with llama.cpp's
/// workers or another process) therefore costs the caller nothing: it finds the gate closed when it wakes and goes back to
/// sleep. Waiting for every woken helper instead made the caller spin away its time slice whenever a helper sat in the run
/// queue, which under load is every call.
/// </remarks>
internal sealed class RowScheduler : IDisposable
{
    private const int Closed = 1 << 30;

    private readonly Thread[] _helpers;
    // Wake-ups for helpers, counted under a monitor. A helper blocks in Monitor.Wait without spinning first (SemaphoreSlim
    // spins before it blocks): a helper spinning after a call competes with llama.cpp's workers at the next decode.
    private readonly object _wake = new();
    private int _tickets;
    private Action<int, int>? _body;
    private int _count;
    private int _next;
    private int _gate = Closed; // helpers inside the current call, plus Closed once the caller stopped admitting them
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
        Volatile.Write(ref _gate, 0); // open: the call's fields are written before any helper can join
        lock (_wake)
        {
            _tickets = Math.Min(_tickets + helpers, _helpers.Length); // a ticket beyond the helpers would only wake one twice
            for (int i = 0; i < helpers; i++) Monitor.Pulse(_wake);
        }
        Work(0);
        // Stop admitting helpers, then wait for those inside: each is at most one row behind.
        Interlocked.Or(ref _gate, Closed);
        if (Volatile.Read(ref _gate) != Closed)
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _gate) != Closed)
                spin.SpinOnce(sleep1Threshold: -1); // yield, never Sleep(1): a joined helper is at most a row away
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

    /// <summary>Enters the current call unless the caller has closed it.</summary>
    private bool TryJoin()
    {
        while (true)
        {
            int gate = Volatile.Read(ref _gate);
            if ((gate & Closed) != 0) return false;
            if (Interlocked.CompareExchange(ref _gate, gate + 1, gate) == gate) return true;
        }
    }

    private void HelperLoop(int index)
    {
        while (true)
        {
            lock (_wake)
            {
                while (_tickets == 0 && !_disposed) Monitor.Wait(_wake);
                if (_disposed) return;
                _tickets--;
            }
            // A ticket may outlive its call (its helper woke after the caller finished): the gate then turns it away.
            if (!TryJoin())
                continue;
            Work(index);
            Interlocked.Decrement(ref _gate);
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        lock (_wake)
        {
            _disposed = true;
            Monitor.PulseAll(_wake);
        }
        foreach (var t in _helpers)
            t.Join();
    }
}
