using System.Diagnostics;
using System.Text.Json;
using LLama;
using LLama.Common;
using LLama.Native;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Bench.EndToEnd;

/// <summary>
/// N concurrent requests on one <see cref="DecodingEngine"/> (continuous batching across requests) against the same requests
/// run one at a time on the same engine, and against raw batched decode of the same total number of sequences (a minimal
/// LLamaSharp loop: prefill once, seq_cp, one llama_decode of every sequence per step, argmax on the host). Methods are
/// interleaved within each repetition; medians and min-max are reported.
/// Usage: concurrent --model FILE|15m|110m [--clients 1,4,16,32] [--tokens 32] [--reps 3] [--threads N]
/// [--strategies bon,blockwise] [--rawbatch PATH] [--out FILE.json] [--markdown FILE.md]
/// With --rawbatch the C loop over llama.h (../shared/bench/rawbatch, see <see cref="CLoop"/>) runs the same number of
/// sequences in every repetition, in the environment the harness was started in: the baseline of issue 24.
/// </summary>
internal static class ConcurrencyHarness
{
    private const string Prompt = "Once upon a time";
    private const int PerRequest = 4; // best-of-4, blockwise K = 4

    public static int Run(string[] args)
    {
        var o = Options.Parse(args);
        var userOmp = CLoop.UserEnvironment();
        string path = EndToEndModels.Resolve(o.Model);
        using var model = GgufModel.Load(path);
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        var reward = new LengthReward(1000); // cheap: the harness measures decoding and scheduling, not rewards
        Console.Error.WriteLine($"model {path}: {model.Info.Description}; threads {o.Threads?.ToString() ?? "default"}; {Environment.ProcessorCount} logical CPUs");
        var rows = new List<Row>();
        foreach (int clients in o.Clients)
        {
            foreach (string strategy in o.Strategies)
            {
                var samples = new Dictionary<string, List<Measurement>>();
                void Add(string method, Measurement m) => (samples.TryGetValue(method, out var l) ? l : samples[method] = []).Add(m);
                for (int rep = rows.Count == 0 ? -1 : 0; rep < o.Reps; rep++)
                {
                    var concurrent = Engine(model, kernels, reward, strategy, clients, o, concurrently: true);
                    var serial = Engine(model, kernels, reward, strategy, clients, o, concurrently: false);
                    var raw = OwnThread.Run(() => RawDecode(path, clients * PerRequest, o), "raw-loop");
                    var c = o.RawBatch is { } exe
                        ? CLoop.Run(exe, path, clients * PerRequest, o.Threads ?? CpuTopology.DefaultThreads, model.Tokenize(Prompt).Length, o.Tokens, userOmp)
                        : null;
                    if (rep < 0) continue; // warm-up
                    if (c is not null) Add($"C loop, {clients * PerRequest} sequences", new Measurement(c.Total, c.TokensDecoded, double.NaN, double.NaN, double.NaN, double.NaN, clients * PerRequest));
                    Add("engine, concurrent", concurrent);
                    Add("engine, one at a time", serial);
                    Add($"raw decode of {clients * PerRequest} sequences", raw);
                    Console.Error.WriteLine($"{strategy} x{clients} rep {rep + 1}/{o.Reps}: concurrent {concurrent.TokensPerSecond:F0} tok/s, " +
                                            $"serial {serial.TokensPerSecond:F0}, raw {raw.TokensPerSecond:F0}" + (c is null ? "" : $", C loop {c.TokensPerSecond:F0}"));
                }
                foreach (var (method, list) in samples) rows.Add(Row.From(strategy, clients, method, list));
            }
        }
        var report = new Report(Path.GetFileName(path), model.Info.Description, Environment.ProcessorCount, o.Threads, o.Tokens, o.Reps,
            $"engine: {OpenMpWaitPolicy.Describe()}; C loop: {CLoop.Describe(userOmp)}", rows);
        string table = Markdown(report);
        if (o.Markdown is { } mdPath) File.WriteAllText(mdPath, table);
        if (o.Out is { } outPath)
        {
            // Raw decode has no latency or overhead figures: NaN, written as a named literal.
            File.WriteAllText(outPath, JsonSerializer.Serialize(report, new JsonSerializerOptions
            {
                WriteIndented = true,
                NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
            }));
        }
        Console.WriteLine(table);
        return 0;
    }

    private static DecodingRequest Request(string strategy, int i, IReward reward, Options o) => new()
    {
        Prompt = Prompt,
        Reward = reward,
        Options = strategy == "bon"
            ? new BestOfNOptions { N = PerRequest, MaxTokens = o.Tokens, Seed = 1, RequestId = (uint)i }
            : new BlockwiseOptions { K = PerRequest, BlockSize = 8, MaxTokens = o.Tokens, Seed = 1, RequestId = (uint)i },
    };

    /// <summary>N requests on one engine, all at once or one after another.</summary>
    private static Measurement Engine(GgufModel model, IStepKernels kernels, IReward reward, string strategy, int clients, Options o, bool concurrently)
    {
        int prompt = model.Tokenize(Prompt).Length;
        using var engine = new DecodingEngine(model, kernels, new EngineOptions
        {
            MaxSequences = Math.Min(256, clients * PerRequest),
            MaxSequenceLength = prompt + o.Tokens + 2,
            MaxQueuedRequests = clients,
            Threads = o.Threads,
            PromptCacheEntries = 0, // every request prefills its own prompt, as distinct prompts would
        });
        var clock = Stopwatch.StartNew();
        var results = new List<AlignedSample>();
        if (concurrently)
        {
            var tasks = Enumerable.Range(0, clients).Select(i => engine.RunAsync(Request(strategy, i, reward, o))).ToArray();
            Task.WaitAll(tasks);
            results.AddRange(tasks.Select(t => t.Result[0]));
        }
        else
        {
            for (int i = 0; i < clients; i++) results.Add(engine.RunAsync(Request(strategy, i, reward, o)).GetAwaiter().GetResult()[0]);
        }
        var wall = clock.Elapsed;
        var status = engine.Status;
        var latency = results.Select(r => (r.Timings.Queued + r.Timings.Total).TotalMilliseconds).Order().ToArray();
        var ttft = results.Select(r => (r.Timings.Queued + r.Timings.FirstAccepted).TotalMilliseconds).Order().ToArray();
        long evaluated = results.Sum(r => r.TokensEvaluated);
        double overhead = status.BusyTime > TimeSpan.Zero ? 1 - status.DecodeTime / status.BusyTime : double.NaN;
        return new Measurement(wall, evaluated, Percentile(latency, 0.5), Percentile(latency, 0.99), Percentile(ttft, 0.5), overhead,
            status.Iterations > 0 ? status.TokensDecoded / (double)status.Iterations : 0);
    }

    /// <summary>The ceiling: every sequence decoded together each step, no engine logic.</summary>
    private static Measurement RawDecode(string path, int sequences, Options o)
    {
        var parameters = new ModelParams(path)
        {
            ContextSize = (uint)(sequences * (16 + o.Tokens)),
            SeqMax = (uint)sequences,
            BatchSize = (uint)Math.Max(512, sequences),
            UBatchSize = (uint)Math.Max(512, sequences),
            Embeddings = true,
            PoolingType = LLamaPoolingType.None,
            FlashAttention = false,
            KVUnified = false,
            // The engine's default when none is given (LLamaSharp's own default is half the logical CPUs).
            Threads = o.Threads ?? CpuTopology.DefaultThreads,
            BatchThreads = o.Threads ?? CpuTopology.DefaultThreads,
        };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        var handle = context.NativeHandle;
        var batch = new LLamaBatch();
        var prompt = weights.Tokenize(Prompt, true, false, System.Text.Encoding.UTF8);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < prompt.Length; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        handle.Decode(batch);
        for (int s = 1; s < sequences; s++) handle.MemorySequenceCopy(LLamaSeqId.Zero, (LLamaSeqId)s, -1, -1);
        var next = new int[sequences];
        Array.Fill(next, ArgMax(handle.GetLogitsIth(0)));
        var decode = Stopwatch.StartNew();
        for (int t = 0; t < o.Tokens; t++)
        {
            batch.Clear();
            for (int s = 0; s < sequences; s++) batch.Add((LLamaToken)next[s], prompt.Length + t, (LLamaSeqId)s, true);
            if (handle.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("raw decode failed");
            for (int s = 0; s < sequences; s++) next[s] = ArgMax(handle.GetLogitsIth(s));
        }
        return new Measurement(clock.Elapsed, (long)sequences * o.Tokens, double.NaN, double.NaN, double.NaN, double.NaN, sequences);
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    private static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];

    /// <param name="Wall">Wall time of all requests.</param>
    /// <param name="TokensEvaluated">Tokens the model decoded for the outputs (candidates included).</param>
    /// <param name="RowsPerIteration">Mean rows in one scheduler decode: how well requests shared batches.</param>
    private sealed record Measurement(TimeSpan Wall, long TokensEvaluated, double LatencyP50, double LatencyP99, double TtftP50, double Overhead, double RowsPerIteration)
    {
        public double TokensPerSecond => TokensEvaluated / Math.Max(1e-9, Wall.TotalSeconds);
    }

    private sealed record Row(string Strategy, int Clients, string Method, double TokensPerSecond, double Min, double Max, double LatencyP50, double LatencyP99,
        double TtftP50, double Overhead, double RowsPerIteration, int Reps)
    {
        public static Row From(string strategy, int clients, string method, List<Measurement> m)
        {
            static double Median(IEnumerable<double> xs)
            {
                var a = xs.Order().ToArray();
                return a.Length == 0 ? double.NaN : a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
            }
            var tps = m.Select(x => x.TokensPerSecond).Order().ToArray();
            return new Row(strategy, clients, method, Median(tps), tps[0], tps[^1], Median(m.Select(x => x.LatencyP50)), Median(m.Select(x => x.LatencyP99)),
                Median(m.Select(x => x.TtftP50)), Median(m.Select(x => x.Overhead)), Median(m.Select(x => x.RowsPerIteration)), m.Count);
        }
    }

    private sealed record Report(string Model, string Description, int LogicalCpus, int? Threads, int Tokens, int Reps, string OpenMp, List<Row> Rows);

    private static string Markdown(Report r)
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"model {r.Model} ({r.Description}); {r.Tokens} new tokens per output; llama.cpp threads {r.Threads?.ToString() ?? "default"} of {r.LogicalCpus} logical CPUs; " +
                      $"{r.Reps} reps, median [min-max]; tokens/s counts every token the model decoded for the outputs (all candidates); {r.OpenMp}");
        sb.AppendLine();
        sb.AppendLine("| strategy | clients | method | tokens/s | vs one at a time | vs raw | vs C loop | latency p50 / p99 ms | TTFT p50 ms | rows per decode | engine overhead |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var g in r.Rows.GroupBy(x => (x.Strategy, x.Clients)))
        {
            var serial = g.First(x => x.Method == "engine, one at a time");
            var raw = g.First(x => x.Method.StartsWith("raw", StringComparison.Ordinal));
            var cLoop = g.FirstOrDefault(x => x.Method.StartsWith("C loop", StringComparison.Ordinal));
            foreach (var x in g)
            {
                bool engine = x.Method.StartsWith("engine", StringComparison.Ordinal);
                sb.AppendLine($"| {(g.Key.Strategy == "bon" ? "best-of-4" : "blockwise K=4 M=8")} | {x.Clients} | {x.Method} | {x.TokensPerSecond:F0} [{x.Min:F0}-{x.Max:F0}] | " +
                              $"{(engine ? $"{x.TokensPerSecond / serial.TokensPerSecond:F2}" : "")} | {(engine ? $"{x.TokensPerSecond / raw.TokensPerSecond:F2}" : "")} | " +
                              $"{(engine && cLoop is not null ? $"{x.TokensPerSecond / cLoop.TokensPerSecond:F2}" : "")} | " +
                              $"{(engine ? $"{x.LatencyP50:F0} / {x.LatencyP99:F0}" : "")} | {(engine ? $"{x.TtftP50:F0}" : "")} | {x.RowsPerIteration:F1} | " +
                              $"{(double.IsNaN(x.Overhead) ? "" : $"{x.Overhead:P1}")} |");
            }
        }
        return sb.ToString();
    }

    private sealed record Options(string Model, int[] Clients, int Tokens, int Reps, int? Threads, string[] Strategies, string? Out, string? Markdown, string? RawBatch)
    {
        public static Options Parse(string[] args)
        {
            string model = DefaultModel.Resolve();
            int[] clients = [1, 4, 16, 32];
            int tokens = 32, reps = 3;
            int? threads = null;
            string[] strategies = ["bon", "blockwise"];
            string? output = null, markdown = null, rawBatch = null;
            for (int i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--model": model = Value(); break;
                    case "--clients": clients = Value().Split(',').Select(int.Parse).ToArray(); break;
                    case "--tokens": tokens = int.Parse(Value()); break;
                    case "--reps": reps = int.Parse(Value()); break;
                    case "--threads": threads = int.Parse(Value()); break;
                    case "--strategies": strategies = Value().Split(','); break;
                    case "--out": output = Value(); break;
                    case "--markdown": markdown = Value(); break;
                    case "--rawbatch": rawBatch = Value(); break;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
            }
            if (rawBatch is not null && !File.Exists(rawBatch)) throw new ArgumentException($"--rawbatch {rawBatch}: not found (build.ps1 perf builds it)");
            return new Options(model, clients, tokens, reps, threads, strategies, output, markdown, rawBatch);
        }
    }
}

/// <summary>The synthetic benchmark models by preset name (written once into the cache folder), or a path.</summary>
internal static class EndToEndModels
{
    public static string Resolve(string spec)
    {
        var preset = ModelShape.Presets.FirstOrDefault(p => p.Name == spec);
        if (preset is null) return spec;
        string path = Path.Combine(SyntheticModel.CacheDirectory, $"{preset.Name}-f16-v32000-s1.gguf");
        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"writing {path}");
            SyntheticModel.Write(path, preset, SentencePieceVocabulary.Synthesize(32000), GgufTensorType.F16);
        }
        return path;
    }
}
