using System.Runtime.ExceptionServices;

namespace Tilt.Bench.EndToEnd;

/// <summary>
/// Runs an in-process llama.cpp loop on a thread that ends with it. libgomp keeps one pool of OpenMP workers per thread
/// that starts a parallel region, alive as long as that thread is; a raw loop run on the harness's main thread would leave
/// its pool behind, and with more libgomp threads alive than CPUs libgomp cuts every spin to its throttled count (100),
/// which slowed the engine measured after it by ~10 % at two threads (issue 24). The engine's own scheduler thread
/// likewise ends with its engine.
/// </summary>
internal static class OwnThread
{
    public static T Run<T>(Func<T> work, string name)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = work();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        }, maxStackSize: 16 << 20) { Name = name };
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }
}
