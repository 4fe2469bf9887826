using System.Diagnostics;
using System.Text;
using Tilt.Bench.Neural;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Rewards;
using Tilt.Engine.Rewards.Neural;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Bench.EndToEnd;

/// <summary>
/// The scoring stage against scoring on the scheduler's thread (<see cref="EngineOptions.ScoringThreads"/> = 0), same
/// process, interleaved per repetition, a fresh engine per run:
/// (A) R concurrent best-of-N requests with the MiniLM <c>similarity:</c> reward: aggregate output tokens/s and request
/// latency p50/p99; (B) R-1 best-of-4 lexicon requests beside one token-wise request whose reward takes a fixed time per
/// call (a stand-in for a remote or large reward model): the others' tokens/s with and without the slow one;
/// (C) the MiniLM reward on 16 real candidates: one call of 16 against 16 calls of one, for ONNX Runtime intra-op threads
/// 1, 2 and its default.
/// Usage: scoring [--model stories260K|15m|110m|FILE] [--requests 8] [--n 16] [--tokens 32] [--reps 5] [--threads N]
/// [--slow-ms 50] [--parts A,B,C] [--markdown FILE]
/// </summary>
internal static class ScoringHarness
{
    private const string Prompt = "Once upon a time";

    public static int Run(string[] args)
    {
        string modelSpec = "stories260K", markdown = "";
        int requests = 8, n = 16, tokens = 32, reps = 5, slowMs = 50;
        int? threads = null;
        string parts = "A,B,C";
        for (int i = 0; i < args.Length; i++)
        {
            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i++])
            {
                case "--model": modelSpec = value; break;
                case "--requests": requests = int.Parse(value); break;
                case "--n": n = int.Parse(value); break;
                case "--tokens": tokens = int.Parse(value); break;
                case "--reps": reps = int.Parse(value); break;
                case "--threads": threads = int.Parse(value); break;
                case "--slow-ms": slowMs = int.Parse(value); break;
                case "--markdown": markdown = value; break;
                case "--parts": parts = value; break;
                default: throw new ArgumentException($"unknown option {args[i - 1]}");
            }
        }
        string path = modelSpec == "stories260K" ? DefaultModel.Resolve() : EndToEndModels.Resolve(modelSpec);
        using var model = GgufModel.Load(path);
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        var similarity = SimilarityReward.Create(NeuralBenchData.MiniLmPath, NeuralBenchData.Target);
        var lexicon = LexiconReward.LoadBuiltIn(LexiconReward.Sentiment);
        var slow = new BatchCallbackReward((candidates, rewards) =>
        {
            Thread.Sleep(slowMs); // the reward's own latency: what the bench simulates, not a synchronization
            lexicon.Score(candidates, rewards);
        }, $"slow({slowMs} ms)+lexicon");

        var load = File.ReadAllText("/proc/loadavg").Split(' ')[0];
        var report = new StringBuilder();
        report.AppendLine($"model {Path.GetFileName(path)} ({model.Info.Description}); llama threads {threads?.ToString() ?? "default"}; " +
                          $"{Environment.ProcessorCount} logical CPUs; load average before: {load}; {reps} interleaved repetitions after one warm-up");
        var a = new Dictionary<int, List<(double TokensPerSecond, TimeSpan[] Latencies)>> { [0] = [], [2] = [] };
        var b = new Dictionary<(int Threads, bool Slow), List<double>> { [(0, false)] = [], [(0, true)] = [], [(2, false)] = [], [(2, true)] = [] };
        for (int rep = -1; rep < reps; rep++)
        {
            foreach (int scoring in new[] { 0, 2 })
            {
                var runA = parts.Contains('A') ? RunA(model, kernels, similarity, scoring, requests, n, tokens, threads) : (TokensPerSecond: 0.0, Latencies: Array.Empty<TimeSpan>());
                var without = parts.Contains('B') ? RunB(model, kernels, lexicon, slow, scoring, requests, tokens, threads, withSlow: false) : 1;
                var with = parts.Contains('B') ? RunB(model, kernels, lexicon, slow, scoring, requests, tokens, threads, withSlow: true) : 1;
                if (rep < 0) continue;
                a[scoring].Add(runA);
                b[(scoring, false)].Add(without);
                b[(scoring, true)].Add(with);
                Console.Error.WriteLine($"rep {rep + 1}/{reps} scoring threads {scoring}: A {runA.TokensPerSecond:F0} tok/s; B others {without:F0} -> {with:F0} tok/s with the slow request");
            }
        }

        if (parts.Contains('A'))
        {
        report.AppendLine();
        report.AppendLine($"A: {requests} concurrent best-of-{n} requests, similarity:MiniLM reward, {tokens} tokens");
        report.AppendLine();
        report.AppendLine("| scoring | output tokens/s median (min-max) | latency p50 | latency p99 |");
        report.AppendLine("| --- | --- | --- | --- |");
        foreach (var (scoring, runs) in a)
        {
            var tps = runs.Select(r => r.TokensPerSecond).Order().ToList();
            var lat = runs.SelectMany(r => r.Latencies).Order().ToList();
            report.AppendLine($"| {Name(scoring)} | {tps[tps.Count / 2]:F0} ({tps[0]:F0}-{tps[^1]:F0}) | {Quantile(lat, 0.5).TotalMilliseconds:F0} ms | {Quantile(lat, 0.99).TotalMilliseconds:F0} ms |");
        }
        }
        if (parts.Contains('B'))
        {
        report.AppendLine();
        report.AppendLine($"B: {requests - 1} best-of-4 lexicon requests ({tokens} tokens) beside one token-wise request (top-k 4) whose reward takes {slowMs} ms per call");
        report.AppendLine();
        report.AppendLine("| scoring | others alone, tokens/s | others beside the slow one | ratio median (min-max) |");
        report.AppendLine("| --- | --- | --- | --- |");
        foreach (int scoring in new[] { 0, 2 })
        {
            var alone = b[(scoring, false)];
            var beside = b[(scoring, true)];
            var ratios = alone.Zip(beside, (x, y) => y / x).Order().ToList();
            report.AppendLine($"| {Name(scoring)} | {Median(alone):F0} | {Median(beside):F0} | {ratios[ratios.Count / 2]:F2} ({ratios[0]:F2}-{ratios[^1]:F2}) |");
        }
        }
        report.AppendLine();
        if (parts.Contains('C')) report.AppendLine("C: similarity:MiniLM on 16 stories260K candidates (48 tokens): one call of 16 against 16 calls of one, interleaved");
        report.AppendLine();
        report.AppendLine("| intra-op threads | 16 singles, ms median (min-max) | 16 in one call | speed-up median |");
        report.AppendLine("| --- | --- | --- | --- |");
        var candidates = NeuralBenchData.Candidates(16);
        foreach (int? intraOp in parts.Contains('C') ? new int?[] { 1, 2, null } : [])
        {
            var reward = SimilarityReward.Create(NeuralBenchData.MiniLmPath, NeuralBenchData.Target, new NeuralRewardOptions { IntraOpThreads = intraOp });
            var singles = new List<double>();
            var batched = new List<double>();
            var rewards = new double[16];
            for (int rep = -1; rep < reps; rep++)
            {
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < 16; i++) reward.ScoreChecked([candidates[i]], rewards.AsSpan(i, 1));
                double one = clock.Elapsed.TotalMilliseconds;
                clock.Restart();
                reward.ScoreChecked(candidates, rewards);
                double all = clock.Elapsed.TotalMilliseconds;
                if (rep < 0) continue;
                singles.Add(one);
                batched.Add(all);
            }
            var ratios = singles.Zip(batched, (x, y) => x / y).ToList();
            report.AppendLine($"| {intraOp?.ToString() ?? "default"} | {Median(singles):F0} ({singles.Min():F0}-{singles.Max():F0}) | " +
                              $"{Median(batched):F0} ({batched.Min():F0}-{batched.Max():F0}) | {Median(ratios):F2}x |");
        }
        report.AppendLine();
        report.AppendLine($"load average after: {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        Console.WriteLine(report);
        if (markdown.Length > 0) File.WriteAllText(markdown, report.ToString());
        return 0;
    }

    private static string Name(int scoring) => scoring == 0 ? "on the scheduler's thread" : $"scoring stage ({scoring} threads)";

    private static DecodingEngine Engine(ILanguageModel model, IStepKernels kernels, int scoring, int sequences, int length, int? threads) =>
        new(model, kernels, new EngineOptions { MaxSequences = sequences, MaxSequenceLength = length, ScoringThreads = scoring, Threads = threads });

    private static (double TokensPerSecond, TimeSpan[] Latencies) RunA(ILanguageModel model, IStepKernels kernels, IReward reward, int scoring,
        int requests, int n, int tokens, int? threads)
    {
        using var engine = Engine(model, kernels, scoring, Math.Min(256, requests * n), tokens + 16, threads);
        var clock = Stopwatch.StartNew();
        var runs = Enumerable.Range(0, requests).Select(async i =>
        {
            var started = clock.Elapsed;
            var result = await engine.RunAsync(new DecodingRequest
            {
                Prompt = Prompt, Reward = reward, Options = new BestOfNOptions { N = n, MaxTokens = tokens, Seed = 1, RequestId = (uint)i },
            });
            return (Tokens: result.Sum(s => s.Tokens.Count), Latency: clock.Elapsed - started);
        }).ToArray();
        var done = Task.WhenAll(runs).GetAwaiter().GetResult();
        return (done.Sum(d => d.Tokens) / clock.Elapsed.TotalSeconds, done.Select(d => d.Latency).ToArray());
    }

    /// <summary>Output tokens per second of the lexicon requests (from the first submission to the last of them finishing).</summary>
    private static double RunB(ILanguageModel model, IStepKernels kernels, IReward lexicon, IReward slow, int scoring, int requests, int tokens, int? threads,
        bool withSlow)
    {
        using var engine = Engine(model, kernels, scoring, 64, tokens + 16, threads);
        var clock = Stopwatch.StartNew();
        var slowRun = withSlow
            ? engine.RunAsync(new DecodingRequest { Prompt = Prompt, Reward = slow, Options = new TokenwiseOptions { Candidates = 4, MaxTokens = tokens, Seed = 2 } })
            : Task.FromResult<IReadOnlyList<AlignedSample>>([]);
        var others = Enumerable.Range(0, requests - 1).Select(i => engine.RunAsync(new DecodingRequest
        {
            Prompt = Prompt, Reward = lexicon, Options = new BestOfNOptions { N = 4, MaxTokens = tokens, Seed = 3, RequestId = (uint)(100 + i) },
        })).ToArray();
        var done = Task.WhenAll(others).GetAwaiter().GetResult();
        double tps = done.Sum(r => r.Sum(s => s.Tokens.Count)) / clock.Elapsed.TotalSeconds;
        slowRun.GetAwaiter().GetResult();
        return tps;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private static TimeSpan Quantile(List<TimeSpan> sorted, double q) => sorted[Math.Min(sorted.Count - 1, (int)Math.Floor(q * sorted.Count))];
}
