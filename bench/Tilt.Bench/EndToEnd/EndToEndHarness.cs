using Tilt.Engine.Decoding;
using System.Diagnostics;
using System.Text.Json;
using LLama;
using LLama.Common;
using LLama.Native;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Bench.EndToEnd;

/// <summary>
/// End-to-end comparison on one model, same run, same K and lengths (issue: performance harness):
/// <list type="bullet">
/// <item>C loop: ../shared/bench/rawbatch, a C loop over llama.h built against the same libraries (build.ps1 perf builds it;
/// --rawbatch or $TILT_RAWBATCH), run as a child process in the environment the harness was started in: the baseline;</item>
/// <item>raw: a minimal loop over LLamaSharp's batch decode with argmax next tokens and no engine logic, in this process
/// (so under the engine's OpenMP wait policy);</item>
/// <item>engine: base generation, best-of-n, blockwise CD and token-wise CD;</item>
/// <item>naive: best-of-n as n sequential single-sequence generations.</item>
/// </list>
/// Runs are interleaved (every method at every thread count once per repetition) so drift of the machine hits all
/// alike; medians and min/max over repetitions are reported, with the ratios engine/raw (same K, same threads) and
/// engine/naive. Every method is measured the same way: tokens/s are the tokens llama_decode evaluated after the prefill per
/// second of that decode phase (K per step, fewer where a sequence ended), with the context created before the clock starts:
/// the C loop's and the raw loop's context, and the engine an in-process method runs its request on (a warm engine, as a
/// service has; creating and disposing one is not decoding). "step ms" is the decode phase per step, "llama_decode ms" the
/// part of it inside llama_decode (timed in-process), "overhead" the rest.
/// Usage: e2e --model FILE|15m|110m|1b [--k 1,4,16,64] [--tokens 64] [--block 8] [--reps 5] [--threads 1,all]
/// [--methods c-loop,raw,generate,best-of-n,naive,blockwise,tokenwise] [--naive-max-k 16] [--rawbatch PATH] [--out FILE.json] [--markdown FILE.md]
/// [--best-of 1] [--engine-omp NAME=VALUE,...] [--load N]
/// (<c>all</c> = the engine's default, one thread per physical core).
/// <c>--best-of 3</c> takes the fastest of three runs for each in-process method, the statistic the C loop reports of its own
/// three repetitions; <c>--engine-omp</c> sets OpenMP variables for this process only (the engine's llama.cpp), not for the C
/// loop; <c>--load N</c> runs N CPU-bound busy loops (child processes, killed at the end) beside everything measured.
/// </summary>
internal static class EndToEndHarness
{
    private const string Prompt = "Once upon a time";

    public static int Run(string[] args)
    {
        var options = Options.Parse(args);
        // The C loop runs in the environment the user started the harness in: captured before the engine sets its own
        // OpenMP wait policy (which this process's children would otherwise inherit).
        var userOmp = CLoop.UserEnvironment();
        foreach (var (name, value) in options.EngineOmp) OpenMpWaitPolicy.Override(name, value);
        using var load = BusyLoad.Start(options.Load);
        string path = EndToEndModels.Resolve(options.Model);
        Console.Error.WriteLine($"model {path}");
        using var model = GgufModel.Load(path);
        using var kernels = StepKernels.Create(KernelBackend.Cpu, Console.Error.WriteLine);
        var reward = new LengthReward(1000); // cheap: the harness measures decoding, not rewards
        var rows = new List<Row>();
        var clock = Stopwatch.StartNew();

        Console.Error.WriteLine($"threads {string.Join(",", options.Threads)} ({CpuTopology.PhysicalCores} physical cores, {CpuTopology.LogicalCpus} logical CPUs); {OpenMpWaitPolicy.Describe()}; busy loops {options.Load}");
        // The fastest of --best-of runs: the statistic the C loop reports of its own repetitions.
        Measurement? Best(Func<Measurement?> run)
        {
            Measurement? best = null;
            for (int i = 0; i < options.BestOf; i++)
                if (run() is { } m && (best is null || m.TokensPerSecond > best.TokensPerSecond)) best = m;
            return best;
        }
        foreach (int k in options.Ks)
        {
            var samples = new Dictionary<(int Threads, string Method), List<Measurement>>();
            void Add(int threads, string method, Measurement? m)
            {
                if (m is not null) (samples.TryGetValue((threads, method), out var l) ? l : samples[(threads, method)] = []).Add(m);
            }
            // The first K also warms every path up once (JIT, page cache) before anything is recorded.
            for (int rep = k == options.Ks[0] ? -1 : 0; rep < options.Reps; rep++)
            {
                foreach (int threads in options.Threads)
                {
                    var c = options.Runs("c-loop") && options.RawBatch is { } exe
                        ? CLoop.Run(exe, path, k, threads, model.Tokenize(Prompt).Length, options.Tokens, userOmp) : null;
                    var raw = options.Runs("raw") ? Best(() => OwnThread.Run(() => RawDecode(path, k, threads, options), "raw-loop")) : null;
                    var generate = options.Runs("generate") ? Best(() => Generate(model, kernels, k, threads, options)) : null;
                    var bon = options.Runs("best-of-n") ? Best(() => BestOfN(model, kernels, reward, k, threads, options)) : null;
                    // Naive best-of-n costs K sequential generations: measured up to --naive-max-k only.
                    var naive = options.Runs("naive") && k <= options.NaiveMaxK ? NaiveBestOfN(model, kernels, k, threads, options) : null;
                    var blockwise = options.Runs("blockwise") ? Blockwise(model, kernels, reward, k, threads, options) : null;
                    var tokenwise = options.Runs("tokenwise") ? Tokenwise(model, kernels, reward, k, threads, options) : null;
                    if (rep < 0) continue;
                    Add(threads, "C loop", c);
                    Add(threads, "raw", raw);
                    Add(threads, "engine generate", generate);
                    Add(threads, "engine best-of-n", bon);
                    Add(threads, "naive best-of-n", naive);
                    Add(threads, "engine blockwise", blockwise);
                    Add(threads, "engine tokenwise", tokenwise);
                }
                if (rep >= 0) Console.Error.WriteLine($"K={k} rep {rep + 1}/{options.Reps} done at {clock.Elapsed.TotalSeconds:F0} s");
            }
            foreach (var ((threads, method), list) in samples.OrderBy(x => x.Key.Threads)) rows.Add(Row.From(k, threads, method, list));
        }

        var report = new Report(Path.GetFileName(path), model.Info.Description, CpuTopology.LogicalCpus, CpuTopology.PhysicalCores,
            options.Threads, $"engine: {OpenMpWaitPolicy.Describe()}, step-kernel workers {CpuStepKernelsInfo()}; C loop: {CLoop.Describe(userOmp)}; busy loops {options.Load}; in-process methods best of {options.BestOf} runs, C loop best of its 3", Process.GetCurrentProcess().Threads.Count,
            [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)],
            options.Tokens, options.Block, options.Reps, Process.GetCurrentProcess().PeakWorkingSet64, rows);
        string json = JsonSerializer.Serialize(report, new JsonSerializerOptions
        {
            WriteIndented = true,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        });
        if (options.Out is { } outPath) File.WriteAllText(outPath, json);
        string table = Markdown(report);
        if (options.Markdown is { } mdPath) File.WriteAllText(mdPath, table);
        Console.WriteLine(table);
        return 0;
    }

    /// <summary>The ceiling: LLamaSharp batch decode of K sequences with the engine's context settings, argmax tokens.</summary>
    private static Measurement RawDecode(string path, int k, int threads, Options options)
    {
        var parameters = new ModelParams(path)
        {
            ContextSize = (uint)(k * (16 + options.Tokens)),
            SeqMax = (uint)k,
            BatchSize = (uint)Math.Max(512, k),
            UBatchSize = (uint)Math.Max(512, k),
            Embeddings = true,
            PoolingType = LLamaPoolingType.None,
            FlashAttention = false,
            KVUnified = false,
            Threads = threads,
            BatchThreads = threads,
        };
        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);
        var handle = context.NativeHandle;
        var batch = new LLamaBatch();
        var prompt = weights.Tokenize(Prompt, true, false, System.Text.Encoding.UTF8);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < prompt.Length; i++) batch.Add(prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        Check(handle.Decode(batch));
        for (int s = 1; s < k; s++) handle.MemorySequenceCopy(LLamaSeqId.Zero, (LLamaSeqId)s, -1, -1);
        var prefill = clock.Elapsed;
        var next = new int[k];
        int first = ArgMax(handle.GetLogitsIth(0));
        Array.Fill(next, first);
        long decodeTicks = 0;
        for (int t = 0; t < options.Tokens - 1; t++)
        {
            batch.Clear();
            for (int s = 0; s < k; s++) batch.Add((LLamaToken)next[s], prompt.Length + t, (LLamaSeqId)s, true);
            long before = Stopwatch.GetTimestamp();
            Check(handle.Decode(batch));
            decodeTicks += Stopwatch.GetTimestamp() - before;
            for (int s = 0; s < k; s++) next[s] = ArgMax(handle.GetLogitsIth(s));
        }
        var total = clock.Elapsed;
        // Rows: the tokens llama_decode evaluated after the prefill (the first token comes from the prefill's logits).
        return new Measurement(prefill, total, (long)k * (options.Tokens - 1), options.Tokens - 1, Stopwatch.GetElapsedTime(0, decodeTicks), null);

        static void Check(DecodeResult r)
        {
            if (r != DecodeResult.Ok) throw new InvalidOperationException($"decode failed: {r}");
        }
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    private static Measurement? Generate(GgufModel model, IStepKernels kernels, int k, int threads, Options options) =>
        OnWarmEngine(model, kernels, new DecodingRequest
        {
            Prompt = Prompt, Options = new GenerationOptions { Samples = k, MaxTokens = options.Tokens, Seed = 1 },
        }, threads, options.BestOf);

    private static Measurement? BestOfN(GgufModel model, IStepKernels kernels, IReward reward, int k, int threads, Options options) =>
        OnWarmEngine(model, kernels, new DecodingRequest
        {
            Prompt = Prompt, Reward = reward, Options = new BestOfNOptions { N = k, MaxTokens = options.Tokens, Seed = 1 },
        }, threads, options.BestOf);

    /// <summary>
    /// One request on an engine sized for it, as a service runs it: the engine (its llama context, KV cache and threads) is
    /// created before the clock starts and disposed after it stops, as the C loop's context is; the request runs
    /// <paramref name="bestOf"/> times on it and the fastest decode phase counts (the C loop's statistic). The decode phase
    /// is the request's wall time from submission to its result less its prefill, and its rows are the tokens llama_decode
    /// evaluated in it, so a step that ends early or decodes a last token for its hidden state is counted as it was run.
    /// </summary>
    private static Measurement? OnWarmEngine(GgufModel model, IStepKernels kernels, DecodingRequest request, int threads, int bestOf)
    {
        using var engine = new DecodingEngine(model, kernels, DecodingEngine.OptionsFor(model, request, new ContextSettings(threads)));
        Measurement? best = null;
        for (int i = 0; i < bestOf; i++)
        {
            var clock = Stopwatch.StartNew();
            var result = engine.RunAsync(request).GetAwaiter().GetResult();
            var total = clock.Elapsed;
            // Every output of one request shares its decodes: the first output's timings are the request's.
            var t = result[0].Timings;
            long rows = request.Options is GenerationOptions ? result.Sum(s => (long)s.Tokens.Count) - result.Count : result.Sum(s => s.TokensEvaluated);
            var m = new Measurement(t.Prefill, total, rows, t.DecodeCalls, t.ModelTime, null);
            if (best is null || m.TokensPerSecond > best.TokensPerSecond) best = m;
        }
        return best;
    }

    /// <summary>Best-of-n done naively: n single-sequence generations one after another, on one warm engine.</summary>
    private static Measurement NaiveBestOfN(GgufModel model, IStepKernels kernels, int k, int threads, Options options)
    {
        DecodingRequest One(int i) => new()
        {
            Prompt = Prompt, Options = new GenerationOptions { Samples = 1, MaxTokens = options.Tokens, Seed = 1, RequestId = (uint)i },
        };
        using var engine = new DecodingEngine(model, kernels, DecodingEngine.OptionsFor(model, One(0), new ContextSettings(threads)));
        var clock = Stopwatch.StartNew();
        long rows = 0;
        int steps = 0;
        var prefill = TimeSpan.Zero;
        var modelTime = TimeSpan.Zero;
        for (int i = 0; i < k; i++)
        {
            var r = engine.RunAsync(One(i)).GetAwaiter().GetResult()[0];
            rows += r.Tokens.Count - 1;
            steps += r.Timings.DecodeCalls;
            prefill += r.Timings.Prefill;
            modelTime += r.Timings.ModelTime;
        }
        return new Measurement(prefill, clock.Elapsed, rows, steps, modelTime, null);
    }

    private static Measurement Blockwise(GgufModel model, IStepKernels kernels, IReward reward, int k, int threads, Options options)
    {
        var clock = Stopwatch.StartNew();
        var events = DecodingEngine.StreamOnOwnEngine(model, kernels, new DecodingRequest
        {
            Prompt = Prompt, Reward = reward, Value = new PrefixRewardValue(reward),
            Options = new BlockwiseOptions { K = k, BlockSize = options.Block, MaxTokens = options.Tokens, Seed = 1 },
        }, new ContextSettings(threads));
        var blockTimes = new List<TimeSpan>();
        var last = TimeSpan.Zero;
        AlignedSample? result = null;
        var enumerator = events.GetAsyncEnumerator();
        while (enumerator.MoveNextAsync().AsTask().GetAwaiter().GetResult())
        {
            if (enumerator.Current is TextAccepted)
            {
                var now = clock.Elapsed;
                blockTimes.Add(now - (blockTimes.Count == 0 ? TimeSpan.Zero : last));
                last = now;
            }
            else if (enumerator.Current is SampleCompleted c) result = c.Result;
        }
        var s = result!;
        // Per-block latency from the second block on: the first also holds the prefill.
        var perBlock = blockTimes.Count > 1 ? blockTimes.Skip(1).Average(x => x.TotalMilliseconds) : blockTimes[0].TotalMilliseconds;
        return new Measurement(s.Timings.Prefill, clock.Elapsed, s.TokensEvaluated, s.Timings.DecodeCalls, s.Timings.ModelTime,
            new BlockStats(s.Timings.FirstAccepted.TotalMilliseconds, perBlock, blockTimes.Count, s.Tokens.Count));
    }

    private static Measurement Tokenwise(GgufModel model, IStepKernels kernels, IReward reward, int k, int threads, Options options)
    {
        var clock = Stopwatch.StartNew();
        var s = Run(model, kernels, new DecodingRequest
        {
            Prompt = Prompt, Reward = reward, Value = new PrefixRewardValue(reward),
            Options = new TokenwiseOptions { Candidates = k, MaxTokens = options.Tokens, Seed = 1 },
        }, threads)[0];
        return new Measurement(s.Timings.Prefill, clock.Elapsed, s.TokensEvaluated, s.Timings.DecodeCalls, s.Timings.ModelTime,
            new BlockStats(s.Timings.FirstAccepted.TotalMilliseconds, (s.Timings.Total - s.Timings.Prefill).TotalMilliseconds / Math.Max(1, s.Tokens.Count), s.Tokens.Count, s.Tokens.Count));
    }

    private static IReadOnlyList<AlignedSample> Run(GgufModel model, IStepKernels kernels, DecodingRequest request, int threads) =>
        DecodingEngine.RunOnOwnEngineAsync(model, kernels, request, new ContextSettings(threads)).GetAwaiter().GetResult();

    internal sealed record Measurement(TimeSpan Prefill, TimeSpan Total, long TokensDecoded, int Steps, TimeSpan ModelTime, BlockStats? Blocks)
    {
        public double DecodeSeconds => (Total - Prefill).TotalSeconds;
        public double TokensPerSecond => TokensDecoded / Math.Max(1e-9, DecodeSeconds);
        public double StepMs => Steps > 0 ? DecodeSeconds * 1000 / Steps : 0;
        public double OverheadShare => ModelTime > TimeSpan.Zero ? 1 - ModelTime.TotalSeconds / DecodeSeconds : double.NaN;

        /// <summary>llama_decode's own time per step (NaN where the method does not time it, e.g. the C loop).</summary>
        public double DecodeMsPerStep => ModelTime > TimeSpan.Zero && Steps > 0 ? ModelTime.TotalMilliseconds / Steps : double.NaN;
    }

    internal sealed record BlockStats(double FirstMs, double PerBlockMs, int Blocks, int Tokens);

    /// <summary>Median and spread over repetitions of one method at one K and thread count.</summary>
    private sealed record Row(int K, int Threads, string Method, double TokensPerSecond, double TokensPerSecondMin, double TokensPerSecondMax,
        double StepMs, double DecodeMsPerStep, double TotalMs, double PrefillMs, double OverheadShare, double? FirstBlockMs, double? PerBlockMs, int Reps)
    {
        /// <summary>(max - min) / median of tokens/s over the repetitions.</summary>
        public double Spread => (TokensPerSecondMax - TokensPerSecondMin) / TokensPerSecond;

        public static Row From(int k, int threads, string method, List<Measurement> m)
        {
            var tps = m.Select(x => x.TokensPerSecond).Order().ToArray();
            double Median(IEnumerable<double> xs)
            {
                var a = xs.Order().ToArray();
                return a.Length == 0 ? double.NaN : a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
            }
            var blocks = m.Where(x => x.Blocks is not null).Select(x => x.Blocks!).ToList();
            return new Row(k, threads, method, Median(tps), tps[0], tps[^1], Median(m.Select(x => x.StepMs)), Median(m.Select(x => x.DecodeMsPerStep)), Median(m.Select(x => x.Total.TotalMilliseconds)),
                Median(m.Select(x => x.Prefill.TotalMilliseconds)), Median(m.Select(x => x.OverheadShare)),
                blocks.Count > 0 ? Median(blocks.Select(b => b.FirstMs)) : null, blocks.Count > 0 ? Median(blocks.Select(b => b.PerBlockMs)) : null, m.Count);
        }
    }

    private sealed record Report(string Model, string Description, int LogicalCpus, int PhysicalCores, int[] Threads, string OpenMp,
        int ProcessThreads, int[] GcCollections, int Tokens, int Block, int Reps, long PeakWorkingSetBytes, List<Row> Rows);

    private static string Markdown(Report r)
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"model {r.Model} ({r.Description}); {r.Tokens} tokens per output, blocks of {r.Block}, {r.Reps} reps (median [min-max], spread = (max-min)/median); " +
            $"llama.cpp threads {string.Join(", ", r.Threads)} of {r.PhysicalCores} physical cores / {r.LogicalCpus} logical CPUs; {r.OpenMp}; " +
            $"{r.ProcessThreads} OS threads at the end; GC collections gen0/1/2 {string.Join("/", r.GcCollections)}; peak working set {r.PeakWorkingSetBytes / 1048576.0:F0} MiB");
        sb.AppendLine();
        sb.AppendLine("| K | threads | method | tokens/s | spread | step ms | llama_decode ms | overhead | vs C loop | vs raw | vs naive | first block ms | per block ms |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var group in r.Rows.GroupBy(x => (x.K, x.Threads)))
        {
            var raw = group.FirstOrDefault(x => x.Method == "raw");
            var cLoop = group.FirstOrDefault(x => x.Method == "C loop");
            var naive = group.FirstOrDefault(x => x.Method == "naive best-of-n");
            foreach (var x in group)
            {
                string vsRaw = raw is null ? "" :
                    x.Method is "engine generate" or "engine best-of-n" ? $"{x.TokensPerSecond / raw.TokensPerSecond:F2}" :
                    x.Method == "engine blockwise" && x.PerBlockMs is { } pb ? $"{pb / (raw.StepMs * r.Block):F2} (block / {r.Block} raw steps)" : "";
                string vsNaive = x.Method == "engine best-of-n" && naive is not null ? $"{naive.TotalMs / x.TotalMs:F2}x faster" : "";
                string vsC = cLoop is null || x.Method is "C loop" || !(x.Method is "raw" or "engine generate" or "engine best-of-n") ? ""
                    : $"{x.TokensPerSecond / cLoop.TokensPerSecond:F2}";
                string overhead = double.IsNaN(x.OverheadShare) ? "" : $"{x.OverheadShare:P1}";
                sb.AppendLine($"| {x.K} | {x.Threads} | {x.Method} | {x.TokensPerSecond:F0} [{x.TokensPerSecondMin:F0}-{x.TokensPerSecondMax:F0}] | {x.Spread:P0} | {x.StepMs:F2} | {(double.IsNaN(x.DecodeMsPerStep) ? "" : x.DecodeMsPerStep.ToString("F2"))} | {overhead} | {vsC} | {vsRaw} | {vsNaive} | {x.FirstBlockMs?.ToString("F1") ?? ""} | {x.PerBlockMs?.ToString("F1") ?? ""} |");
            }
        }
        return sb.ToString();
    }

    private static readonly string[] Methods = ["c-loop", "raw", "generate", "best-of-n", "naive", "blockwise", "tokenwise"];

    private static string CpuStepKernelsInfo() => Environment.GetEnvironmentVariable("TILT_KERNEL_THREADS") ?? "default";

    private sealed record Options(string Model, int[] Ks, int Tokens, int Block, int Reps, int[] Threads, string[] Methods, string? Out, string? Markdown, int NaiveMaxK,
        string? RawBatch, int BestOf, (string Name, string Value)[] EngineOmp, int Load)
    {
        public bool Runs(string method) => Methods.Contains(method);

        public static Options Parse(string[] args)
        {
            string model = DefaultModel.Resolve();
            int[] ks = [1, 4, 16, 64];
            int tokens = 64, block = 8, reps = 5;
            int[] threads = [1, CpuTopology.DefaultThreads];
            string[] methods = EndToEndHarness.Methods;
            string? output = null, markdown = null;
            int naiveMaxK = 16, bestOf = 1, load = 0;
            (string, string)[] engineOmp = [];
            string? rawBatch = Environment.GetEnvironmentVariable("TILT_RAWBATCH") is { Length: > 0 } env ? env : null;
            for (int i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                switch (args[i])
                {
                    case "--model": model = Value(); break;
                    case "--k": ks = Value().Split(',').Select(int.Parse).ToArray(); break;
                    case "--tokens": tokens = int.Parse(Value()); break;
                    case "--block": block = int.Parse(Value()); break;
                    case "--reps": reps = int.Parse(Value()); break;
                    case "--threads":
                        threads = Value().Split(',').Select(t => t == "all" ? CpuTopology.DefaultThreads : CpuTopology.CheckThreads(int.Parse(t), "--threads")!.Value)
                            .Distinct().ToArray();
                        break;
                    case "--methods":
                        methods = Value().Split(',');
                        if (methods.FirstOrDefault(m => !EndToEndHarness.Methods.Contains(m)) is { } bad)
                            throw new ArgumentException($"unknown method {bad} (one of {string.Join(", ", EndToEndHarness.Methods)})");
                        break;
                    case "--out": output = Value(); break;
                    case "--markdown": markdown = Value(); break;
                    case "--naive-max-k": naiveMaxK = int.Parse(Value()); break;
                    case "--rawbatch": rawBatch = Value(); break;
                    case "--best-of": bestOf = int.Parse(Value()); break;
                    case "--load": load = int.Parse(Value()); break;
                    case "--engine-omp":
                        engineOmp = Value().Split(',').Select(kv => kv.Split('=', 2) is [var n, var v] && n is "OMP_WAIT_POLICY" or "GOMP_SPINCOUNT"
                            ? (n, v) : throw new ArgumentException($"--engine-omp {kv}: expected OMP_WAIT_POLICY=VALUE or GOMP_SPINCOUNT=VALUE")).ToArray();
                        break;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
            }
            if (rawBatch is not null && !File.Exists(rawBatch)) throw new ArgumentException($"--rawbatch {rawBatch}: not found (build.ps1 perf builds it)");
            if (bestOf < 1 || bestOf > 10) throw new ArgumentException($"--best-of {bestOf}: expected 1..10");
            if (load < 0 || load > 64) throw new ArgumentException($"--load {load}: expected 0..64");
            return new Options(model, ks, tokens, block, reps, threads.Distinct().ToArray(), methods, output, markdown, naiveMaxK, rawBatch, bestOf, engineOmp, load);
        }
    }
}
