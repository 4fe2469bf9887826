using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Rewards;
using Tilt.Engine.Rewards.Neural;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Bench.Neural;

/// <summary>The MiniLM similarity reward and real candidates: stories260K samples of 48 tokens (seed 42).</summary>
internal static class NeuralBenchData
{
    public const string Target = "a happy story about friends";

    /// <summary>$TILT_BENCH_MINILM, else all-MiniLM-L6-v2/model.onnx beside the default GGUF model.</summary>
    public static string MiniLmPath =>
        Environment.GetEnvironmentVariable("TILT_BENCH_MINILM") is { Length: > 0 } path
            ? path
            : Path.Combine(Path.GetDirectoryName(DefaultModel.Resolve())!, "all-MiniLM-L6-v2", "model.onnx");

    public static RewardInput[] Candidates(int count)
    {
        using var model = GgufModel.Load(DefaultModel.Resolve());
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        var result = DecodingEngine.RunOnOwnEngineAsync(model, kernels, new DecodingRequest
        {
            Prompt = "Once upon a time", Options = new GenerationOptions { Samples = count, MaxTokens = 48, Seed = 42 },
        }).GetAwaiter().GetResult();
        return [.. result.Select(s => new RewardInput { Prompt = "Once upon a time", Text = s.Text, Tokens = s.Tokens, IsFinished = false })];
    }
}

/// <summary>
/// Candidates scored per second by <c>similarity:MiniLM|a happy story about friends</c> for batches of 1, 8, 32 and 64
/// (one ONNX Runtime run each; ONNX Runtime's default intra-op threads).
/// </summary>
[Config(typeof(Config))]
public class SimilarityScoringBenchmarks
{
    private SimilarityReward _reward = null!;
    private RewardInput[] _batch = null!;
    private double[] _rewards = null!;

    [Params(1, 8, 32, 64)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _reward = SimilarityReward.Create(NeuralBenchData.MiniLmPath, NeuralBenchData.Target);
        _batch = NeuralBenchData.Candidates(Batch);
        _rewards = new double[Batch];
    }

    [Benchmark]
    public double Score()
    {
        _reward.ScoreChecked(_batch, _rewards);
        return _rewards[0];
    }

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
            AddColumn(new CandidatesPerSecondColumn());
        }
    }

    private sealed class CandidatesPerSecondColumn : IColumn
    {
        public string Id => "CandidatesPerSecond";
        public string ColumnName => "Candidates/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "Candidates scored per second of wall-clock time (batch / mean time of one call)";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            int batch = (int)benchmarkCase.Parameters["Batch"];
            return summary[benchmarkCase]?.ResultStatistics is { } stats ? $"{batch / (stats.Mean / 1e9):F0}" : "?";
        }
    }
}

/// <summary>16 candidates in one batch (one run) against the same 16 scored by 16 single calls (the baseline); the Ratio column is the speed-up.</summary>
[Config(typeof(Config))]
public class SimilarityBatchingBenchmarks
{
    private SimilarityReward _reward = null!;
    private RewardInput[] _candidates = null!;
    private double[] _rewards = null!;

    [GlobalSetup]
    public void Setup()
    {
        _reward = SimilarityReward.Create(NeuralBenchData.MiniLmPath, NeuralBenchData.Target);
        _candidates = NeuralBenchData.Candidates(16);
        _rewards = new double[16];
    }

    [Benchmark(Baseline = true)]
    public double SixteenSingleCalls()
    {
        double sum = 0;
        foreach (var candidate in _candidates) sum += _reward.Score(candidate);
        return sum;
    }

    [Benchmark]
    public double SixteenInOneBatch()
    {
        _reward.ScoreChecked(_candidates, _rewards);
        return _rewards.Sum();
    }

    private sealed class Config : ManualConfig
    {
        public Config() => AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
    }
}

/// <summary>
/// <c>neural-share [--n 16] [--reps 5] [--model FILE]</c>: the share of a best-of-n request's wall-clock time spent in
/// the similarity reward, measured inside each request (a timing wrapper around the reward), median over repetitions.
/// </summary>
internal static class NeuralRewardShare
{
    public static int Run(string[] args)
    {
        int n = 16, reps = 5;
        string modelPath = DefaultModel.Resolve();
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--n": n = int.Parse(args[i + 1]); break;
                case "--reps": reps = int.Parse(args[i + 1]); break;
                case "--model": modelPath = args[i + 1]; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        using var model = GgufModel.Load(modelPath);
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        using var engine = new DecodingEngine(model, kernels);
        var reward = new TimedReward(SimilarityReward.Create(NeuralBenchData.MiniLmPath, NeuralBenchData.Target));
        var shares = new List<double>();
        var totals = new List<double>();
        for (int rep = -1; rep < reps; rep++) // rep -1 warms up (JIT, first ONNX run)
        {
            reward.Elapsed = TimeSpan.Zero;
            var clock = Stopwatch.StartNew();
            engine.RunAsync(new DecodingRequest
            {
                Prompt = "Once upon a time",
                Options = new BestOfNOptions { N = n, MaxTokens = 128, Seed = (ulong)(rep + 2) },
                Reward = reward,
            }).GetAwaiter().GetResult();
            clock.Stop();
            if (rep < 0) continue;
            shares.Add(reward.Elapsed / clock.Elapsed);
            totals.Add(clock.Elapsed.TotalMilliseconds);
            Console.WriteLine($"rep {rep}: request {clock.Elapsed.TotalMilliseconds:F1} ms, reward {reward.Elapsed.TotalMilliseconds:F1} ms, share {shares[^1]:P1}");
        }

        shares.Sort();
        totals.Sort();
        Console.WriteLine($"{Path.GetFileName(modelPath)} best-of-{n}, 128 tokens: reward share median {shares[shares.Count / 2]:P1} (min {shares[0]:P1}, max {shares[^1]:P1}); request median {totals[totals.Count / 2]:F1} ms");
        return 0;
    }

    private sealed class TimedReward(IReward inner) : IReward
    {
        public TimeSpan Elapsed { get; set; }
        public string Description => inner.Description;
        public bool NeedsHiddenState => inner.NeedsHiddenState;

        public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
        {
            long start = Stopwatch.GetTimestamp();
            inner.Score(candidates, rewards);
            Elapsed += Stopwatch.GetElapsedTime(start);
        }
    }
}
