using System.Runtime.InteropServices;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// How llama.cpp's OpenMP workers wait. The bundled CPU backend runs every decode as an OpenMP parallel region
/// (libgomp) and separates the operations of its graph with OpenMP barriers, a few hundred per decode. libgomp's
/// default (no OMP_WAIT_POLICY) spins 300,000 pause iterations, ~12-16 ms on this machine, before a waiting thread
/// sleeps: longer than a whole decode step of the models measured, so between decodes the workers keep every other
/// core busy while the engine samples on .NET threads, and when anything else is runnable a worker spins away its
/// time slice at each barrier while the thread it waits for sits in the run queue (a collapse measured at 5-50x,
/// docs/performance.md). PASSIVE makes a waiting thread sleep at once and hand its core over, but then every one of those
/// barriers is a futex sleep and wake-up: on a quiet machine the engine loses 20-45 % of a C loop's decode throughput at
/// K = 16 to it (issue 24). A bounded spin (GOMP_SPINCOUNT=3000, ~0.1 ms) recovers most of that for the 15M and 110M
/// models and keeps >= 0.8x beside one busy process, but with a tiny model (stories260K, ~1 ms decodes) beside a
/// CPU-bound reward on the scoring stage short requests went from ~20 ms to 140-180 ms in some runs (SlowRewardTests),
/// where PASSIVE stayed at 20-25 ms. PASSIVE stays the default, for robustness; a dedicated machine serving larger models
/// sets GOMP_SPINCOUNT=3000 itself (docs/performance.md, "Every core against a C loop").
/// </summary>
/// <remarks>
/// libgomp reads its environment once, when it is loaded, from the C library's environ. On Unix .NET's
/// Environment.SetEnvironmentVariable changes only the runtime's own copy, so the value is set with libc's setenv, and
/// it must happen before the llama library (and with it libgomp) is loaded. A value the user set (OMP_WAIT_POLICY or
/// GOMP_SPINCOUNT) is never overridden.
/// </remarks>
internal static partial class OpenMpWaitPolicy
{
    /// <summary>The wait policy set when the user chose none (measured in docs/performance.md).</summary>
    internal const string DefaultWaitPolicy = "PASSIVE";

    /// <summary>The bounded spin measured best for dedicated machines (docs/performance.md); not set by default.</summary>
    internal const string RecommendedSpinCount = "3000";

    private const string SpinCountVariable = "GOMP_SPINCOUNT";
    private const string WaitPolicyVariable = "OMP_WAIT_POLICY";

    /// <summary>
    /// Sets OMP_WAIT_POLICY to <see cref="DefaultWaitPolicy"/> unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is already set.
    /// Returns false when libgomp was already loaded into the process (the setting then comes too late).
    /// </summary>
    internal static bool Apply()
    {
        if (Get(WaitPolicyVariable) is null && Get(SpinCountVariable) is null)
            Set(WaitPolicyVariable, DefaultWaitPolicy);
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

    /// <summary>The settings libgomp sees, e.g. "OMP_WAIT_POLICY=PASSIVE, GOMP_SPINCOUNT unset".</summary>
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
