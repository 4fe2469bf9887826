using Tilt.Engine.Decoding;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Bench.EndToEnd;

/// <summary>
/// Base-model generation throughput: K samples of up to 128 tokens from one prompt, one batched decode per
/// step. Runs in-process (the model is loaded once per K) and reports generated tokens per second.
/// The model defaults to stories260K; set TILT_BENCH_MODEL to measure another GGUF.
/// </summary>
[Config(typeof(Config))]
public class GenerateBenchmarks
{
    private GgufModel _model = null!;
    private IStepKernels _kernels = null!;
    private GenerationOptions _options = null!;

    [Params(1, 16, 64)]
    public int K { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string path = Environment.GetEnvironmentVariable("TILT_BENCH_MODEL") ?? DefaultModel.Resolve();
        _model = GgufModel.Load(path);
        _kernels = StepKernels.Create(KernelBackend.Cpu);
        _options = new GenerationOptions { Samples = K, MaxTokens = 128, Seed = 42 };
        // The seed fixes the samples, so every invocation generates the same number of tokens.
        TokensPerInvocation[K] = Generate();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _kernels.Dispose();
        _model.Dispose();
    }

    [Benchmark]
    public int Generate() => DecodingEngine.RunOnOwnEngineAsync(_model, _kernels, new DecodingRequest { Prompt = "Once upon a time", Options = _options })
        .GetAwaiter().GetResult().Sum(s => s.Tokens.Count);

    internal static readonly Dictionary<int, int> TokensPerInvocation = [];

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(2).WithIterationCount(10));
            AddColumn(new TokensPerSecondColumn());
        }
    }

    /// <summary>Generated tokens per invocation divided by the mean time of an invocation.</summary>
    private sealed class TokensPerSecondColumn : IColumn
    {
        public string Id => "TokensPerSecond";
        public string ColumnName => "Tokens/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "Generated tokens (all K samples) per second of wall-clock time, mean invocation";
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            int k = (int)benchmarkCase.Parameters["K"];
            var report = summary[benchmarkCase];
            if (report?.ResultStatistics is not { } stats || !TokensPerInvocation.TryGetValue(k, out int tokens)) return "?";
            return $"{tokens / (stats.Mean / 1e9):F0} ({tokens} tok)";
        }
    }
}
