using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Requests;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Training;

namespace Tilt.Engine.Tests.Models;

public sealed class CpuTopologyTests
{
    [Theory]
    [InlineData("0", new[] { 0 })]
    [InlineData("0-3", new[] { 0, 1, 2, 3 })]
    [InlineData(" 0,2-3,8\n", new[] { 0, 2, 3, 8 })]
    [InlineData("5,1-2,2", new[] { 1, 2, 5 })]
    public void CpuListsParse(string list, int[] expected) => Assert.Equal(expected, CpuTopology.ParseCpuList(list));

    [Theory]
    [InlineData("")]
    [InlineData("3-1")]
    [InlineData("a-b")]
    [InlineData("-1")]
    public void BadCpuListsAreRefused(string list) => Assert.Throws<FormatException>(() => CpuTopology.ParseCpuList(list));

    [Fact]
    public void TheAffinityMaskIsReadFromProcStatus()
    {
        const string status = "Name:\tdotnet\nCpus_allowed:\tff\nCpus_allowed_list:\t0-1,4\nMems_allowed_list:\t0\n";
        Assert.Equal([0, 1, 4], CpuTopology.AllowedCpus(status));
        Assert.Throws<FormatException>(() => CpuTopology.AllowedCpus("Name:\tdotnet\n"));
    }

    [Fact]
    public void SmtSiblingsCountAsOneCore()
    {
        // 4 cores with 2 threads each, siblings n and n+4 (the usual Linux numbering); the process may use 0-1 and 4-6.
        string Siblings(int cpu) => $"{cpu % 4},{cpu % 4 + 4}";
        Assert.Equal(3, CpuTopology.CountCores([0, 1, 4, 5, 6], Siblings));
        Assert.Equal(4, CpuTopology.CountCores(Enumerable.Range(0, 8), Siblings));
        // Siblings written as a range count the same as the list.
        Assert.Equal(1, CpuTopology.CountCores([0, 1], _ => "0-1"));
        // Unknown topology: 0, so the caller falls back to the logical count.
        Assert.Equal(0, CpuTopology.CountCores([0, 1], cpu => cpu == 0 ? "0" : null));
    }

    [Fact]
    public void TheDefaultIsBetweenOneAndTheLogicalCpus()
    {
        Assert.InRange(CpuTopology.PhysicalCores, 1, CpuTopology.LogicalCpus);
        Assert.Equal(CpuTopology.PhysicalCores, CpuTopology.DefaultThreads);
        Assert.Equal(CpuTopology.DefaultThreads, CpuTopology.Resolve(null));
        Assert.Equal(1, CpuTopology.Resolve(1));
        if (OperatingSystem.IsLinux() && File.Exists("/sys/devices/system/cpu/cpu0/topology/core_cpus_list"))
        {
            // Cross-check with /proc/cpuinfo's (physical id, core id) pairs on a machine whose affinity covers every CPU.
            var pairs = File.ReadAllLines("/proc/cpuinfo").Where(l => l.StartsWith("physical id") || l.StartsWith("core id")).ToArray();
            if (pairs.Length > 0 && CpuTopology.LogicalCpus == pairs.Length / 2)
                Assert.Equal(pairs.Chunk(2).Select(p => p[0] + p[1]).Distinct().Count(), CpuTopology.PhysicalCores);
        }
    }

    [Fact]
    public void ThreadCountsOutsideOneToTheLogicalCpusAreRefusedEverywhere()
    {
        int tooMany = CpuTopology.LogicalCpus + 1;
        foreach (int bad in new[] { 0, -1, tooMany })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new SessionOptions { Threads = bad });
            Assert.Contains(bad.ToString(), e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => new EngineOptions { Threads = bad });
            Assert.Throws<ArgumentOutOfRangeException>(() => new RolloutOptions { Threads = bad });
        }
        Assert.Contains($"at most {CpuTopology.LogicalCpus}", CpuTopology.ThreadsProblem(tooMany));
        Assert.Null(CpuTopology.ThreadsProblem(CpuTopology.LogicalCpus));
        Assert.Equal(CpuTopology.LogicalCpus, new SessionOptions { Threads = CpuTopology.LogicalCpus }.Threads);
        Assert.Null(new RolloutOptions().Threads);
        using var tabular = TabularModel.Load(TabularModelTests.ExamplePath());
        // A one-off engine takes its threads from the caller's context settings, never from a request.
        Assert.Throws<ArgumentOutOfRangeException>(() => DecodingEngine.OptionsFor(tabular, new DecodingRequest
        {
            Prompt = "", Options = new GenerationOptions { MaxTokens = 2 },
        }, new ContextSettings(Threads: tooMany)));
    }
}
