using System.Diagnostics;

namespace Tilt.Bench.EndToEnd;

/// <summary>
/// "Under load" for the harness: N CPU-bound busy loops in child processes, started by the benchmark and stopped by it
/// (and each bounded to an hour by coreutils' timeout, should the harness die without stopping them).
/// </summary>
internal sealed class BusyLoad : IDisposable
{
    private readonly List<Process> _loops = [];

    public static BusyLoad Start(int count)
    {
        var load = new BusyLoad();
        for (int i = 0; i < count; i++)
        {
            var start = new ProcessStartInfo("timeout") { UseShellExecute = false };
            foreach (string arg in new[] { "3600", "sh", "-c", "while :; do :; done" }) start.ArgumentList.Add(arg);
            load._loops.Add(Process.Start(start) ?? throw new InvalidOperationException("cannot start a busy loop"));
        }
        return load;
    }

    public void Dispose()
    {
        foreach (var p in _loops)
        {
            try
            {
                if (!p.HasExited) p.Kill(entireProcessTree: true);
                p.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
            p.Dispose();
        }
    }
}
