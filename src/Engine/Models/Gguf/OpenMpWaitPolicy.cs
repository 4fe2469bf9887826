using System.Runtime.InteropServices;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// How llama.cpp's OpenMP workers wait. The bundled CPU backend runs every decode as an OpenMP parallel region
/// (libgomp) and separates the operations of its graph with OpenMP barriers, a few hundred per decode. libgomp's
/// default (no OMP_WAIT_POLICY) spins 300,000 pause iterations, milliseconds, before a waiting thread sleeps: longer than
/// a whole decode step of the models measured, so between decodes the workers keep every other core busy while the
/// engine samples on .NET threads, and when anything else is runnable a worker spins away its time slice at each barrier
/// while the thread it waits for sits in the run queue (a collapse measured at 5-50x, docs/performance.md). PASSIVE
/// (sleep at once) avoids that but makes every barrier a futex sleep and wake-up: on a quiet machine it cost 10-25 % of a
/// C loop's decode throughput at two threads (issue 24). The default is a short bounded spin, GOMP_SPINCOUNT=1000
/// (~10 us): at two threads the engine decodes at 0.89-1.03 of the C loop for K = 16 and 64 on the 15M and 110M models
/// (the C loop spins 300,000), stays above it beside one busy process (1.03-1.07), and keeps a tiny model's short
/// requests within their latency limit beside a CPU-bound reward on the scoring stage (SlowRewardTests: 3,000 made them
/// erratic there, 10,000 collapsed beside a busy process).
/// </summary>
/// <remarks>
/// libgomp reads its environment once, when it is loaded, from the C library's environ. On Unix .NET's
/// Environment.SetEnvironmentVariable changes only the runtime's own copy, so the value is set with libc's setenv, and
/// it must happen before the llama library (and with it libgomp) is loaded. A value the user set (OMP_WAIT_POLICY or
/// GOMP_SPINCOUNT) is never overridden. libgomp keeps one pool of workers per thread that starts parallel regions, and
/// with more of its threads alive than CPUs it cuts every spin to 100: each engine decodes on one scheduler thread that
/// ends with the engine, so a process with one engine per model stays under that line.
/// </remarks>
internal static partial class OpenMpWaitPolicy
{
    /// <summary>The spin count set when the user chose no wait setting (measured in docs/performance.md).</summary>
    internal const string DefaultSpinCount = "1000";

    private const string SpinCountVariable = "GOMP_SPINCOUNT";
    private const string WaitPolicyVariable = "OMP_WAIT_POLICY";

    /// <summary>
    /// Sets GOMP_SPINCOUNT to <see cref="DefaultSpinCount"/> unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is already set.
    /// Returns false when libgomp was already loaded into the process (the setting then comes too late).
    /// </summary>
    internal static bool Apply()
    {
        if (Get(WaitPolicyVariable) is null && Get(SpinCountVariable) is null)
            Set(SpinCountVariable, DefaultSpinCount);
        return !LibgompLoaded();
    }

    /// <summary>
    /// Sets an OpenMP variable for this process (overwriting), before llama.cpp is loaded: for harnesses that compare wait
    /// policies in one environment while their C baseline runs in another. Throws when libgomp is already loaded.
    /// </summary>
    internal static void Override(string name, string value)
    {
        if (LibgompLoaded()) throw new InvalidOperationException($"{name}={value} comes too late: libgomp is already loaded");
        if (OperatingSystem.IsLinux() && Native.setenv(name, value, 1) != 0)
            throw new TiltException($"setenv({name}) failed: {Marshal.GetLastPInvokeErrorMessage()}");
        Environment.SetEnvironmentVariable(name, value);
    }

    /// <summary>The settings libgomp sees, e.g. "OMP_WAIT_POLICY unset, GOMP_SPINCOUNT=1000".</summary>
    internal static string Describe()
    {
        static string One(string name) => Get(name) is { } v ? $"{name}={v}" : $"{name} unset";
        return $"{One(WaitPolicyVariable)}, {One(SpinCountVariable)}";
    }

    private static string? Get(string name) =>
        OperatingSystem.IsLinux() ? Marshal.PtrToStringUTF8(Native.getenv(name)) : Environment.GetEnvironmentVariable(name);

    private static void Set(string name, string value)
    {
        if (!OperatingSystem.IsLinux())
        {
            // Windows keeps one environment block per process, which its OpenMP runtime reads too; the bundled macOS
            // backend does not use OpenMP.
            Environment.SetEnvironmentVariable(name, value);
            return;
        }
        if (Native.setenv(name, value, 0) != 0)
            throw new TiltException($"setenv({name}) failed: {Marshal.GetLastPInvokeErrorMessage()}");
        Environment.SetEnvironmentVariable(name, value); // keep the runtime's copy (what child processes inherit) in step
    }

    private static bool LibgompLoaded()
    {
        if (!OperatingSystem.IsLinux()) return false;
        nint handle = Native.dlopen("libgomp.so.1", Native.RtldLazy | Native.RtldNoload);
        if (handle == 0) return false;
        Native.dlclose(handle);
        return true;
    }

    private static partial class Native
    {
        internal const int RtldLazy = 0x1;
        internal const int RtldNoload = 0x4;

        // libc.so.6 by name: "libc" alone can resolve to the linker script libc.so where glibc's dev files are installed.
        private const string Libc = "libc.so.6";

        [LibraryImport(Libc, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial nint getenv(string name);

        [LibraryImport(Libc, StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int setenv(string name, string value, int overwrite);

        [LibraryImport(Libc, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial nint dlopen(string file, int mode);

        [LibraryImport(Libc)]
        internal static partial int dlclose(nint handle);
    }
}
