using System.Globalization;

namespace Tilt.Engine.Models;

/// <summary>
/// How many CPU threads llama.cpp should use, and which counts are allowed. The default is one thread per physical
/// core the process may run on: llama.cpp's matrix products are bound by FMA units and memory bandwidth, which SMT
/// siblings share, so a second thread per core adds contention, not speed (LLamaSharp's own default, half the
/// logical CPUs, is right only on 2-way SMT machines and leaves half the cores idle elsewhere).
/// </summary>
public static class CpuTopology
{
    private static readonly Lazy<int> Physical = new(CountPhysicalCores);

    /// <summary>Logical CPUs this process may use (affinity and container limits applied by the runtime).</summary>
    public static int LogicalCpus => Environment.ProcessorCount;

    /// <summary>
    /// Physical cores among the CPUs this process may run on: on Linux, distinct cores in sysfs (SMT siblings counted
    /// once) over the affinity mask, at most <see cref="LogicalCpus"/> (a container's CPU quota); elsewhere, or when
    /// the topology cannot be read, <see cref="LogicalCpus"/>.
    /// </summary>
    public static int PhysicalCores => Physical.Value;

    /// <summary>The engine's default llama.cpp thread count: <see cref="PhysicalCores"/>.</summary>
    public static int DefaultThreads => PhysicalCores;

    /// <summary>
    /// Checks a requested thread count: null (the default) or 1..<see cref="LogicalCpus"/>. More threads than CPUs
    /// are refused rather than clamped: llama.cpp's workers spin at every barrier, so oversubscribing them stalls
    /// each decode on descheduled threads.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The count is below 1 or above the logical CPUs.</exception>
    public static int? CheckThreads(int? value, string name) =>
        value is { } v && ThreadsProblem(v) is { } problem ? throw new ArgumentOutOfRangeException(name, v, problem) : value;

    /// <summary>Why <paramref name="threads"/> is not an allowed thread count, or null when it is.</summary>
    public static string? ThreadsProblem(int threads) => threads switch
    {
        < 1 => $"threads must be at least 1, got {threads}",
        _ when threads > LogicalCpus => $"threads must be at most {LogicalCpus} (the logical CPUs this process may use), got {threads}",
        _ => null,
    };

    /// <summary>The thread count a session with <paramref name="requested"/> threads will use.</summary>
    public static int Resolve(int? requested) => requested ?? DefaultThreads;

    private static int CountPhysicalCores()
    {
        int logical = LogicalCpus;
        if (!OperatingSystem.IsLinux()) return logical;
        try
        {
            var allowed = AllowedCpus(File.ReadAllText("/proc/self/status"));
            int cores = CountCores(allowed, SiblingsOf);
            return cores > 0 ? Math.Min(cores, logical) : logical;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            return logical;
        }
    }

    private static string? SiblingsOf(int cpu)
    {
        // core_cpus_list is the current name; thread_siblings_list the older (still present) one.
        string dir = $"/sys/devices/system/cpu/cpu{cpu}/topology/";
        foreach (string file in new[] { "core_cpus_list", "thread_siblings_list" })
            if (File.Exists(dir + file))
                return File.ReadAllText(dir + file).Trim();
        return null;
    }

    /// <summary>
    /// Distinct physical cores among <paramref name="cpus"/>, where <paramref name="siblingsOf"/> gives the list of
    /// logical CPUs sharing a CPU's core (sysfs core_cpus_list). 0 when any CPU's siblings are unknown.
    /// </summary>
    internal static int CountCores(IEnumerable<int> cpus, Func<int, string?> siblingsOf)
    {
        var cores = new HashSet<string>(StringComparer.Ordinal);
        foreach (int cpu in cpus)
        {
            string? siblings = siblingsOf(cpu);
            if (string.IsNullOrEmpty(siblings)) return 0;
            cores.Add(string.Join(',', ParseCpuList(siblings)));
        }
        return cores.Count;
    }

    /// <summary>The CPUs in /proc/self/status's Cpus_allowed_list (the affinity mask).</summary>
    internal static IReadOnlyList<int> AllowedCpus(string procStatus)
    {
        foreach (string line in procStatus.Split('\n'))
            if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                return ParseCpuList(line["Cpus_allowed_list:".Length..]);
        throw new FormatException("/proc/self/status has no Cpus_allowed_list");
    }

    /// <summary>Parses a kernel CPU list such as "0-3,8,10-11" into sorted CPU numbers.</summary>
    internal static IReadOnlyList<int> ParseCpuList(string list)
    {
        var cpus = new SortedSet<int>();
        foreach (string part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int dash = part.IndexOf('-');
            int first = int.Parse(dash < 0 ? part : part[..dash], NumberStyles.None, CultureInfo.InvariantCulture);
            int last = dash < 0 ? first : int.Parse(part[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture);
            if (last < first || last - first > 1 << 16) throw new FormatException($"bad CPU range '{part}'");
            for (int c = first; c <= last; c++) cpus.Add(c);
        }
        if (cpus.Count == 0) throw new FormatException($"empty CPU list '{list.Trim()}'");
        return [.. cpus];
    }
}
