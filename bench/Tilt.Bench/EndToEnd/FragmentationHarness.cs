using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Bench.EndToEnd;

/// <summary>
/// A workload that fragments the engine's sequence ids (docs/architecture.md, "Sequence ids"): C closed-loop clients each
/// send seeded requests of random n (1, 2, 4, 8 samples or best-of-n candidates), random lengths (8..48 tokens) and, one in
/// four, early rejection with alpha 0.5, so requests arrive and finish at random and early rejection frees candidates
/// mid-request. Run with sequence compaction on and off (interleaved per repetition) and, when <c>--raw</c> names the C loop
/// (../shared/bench/rawbatch), against it at the workload's mean rows per decode with contiguous ids. Reports per run:
/// wall time, tokens decoded per second of wall time and of decode time, rows per decode, id runs per decode, moves.
/// Usage: fragment --model FILE|15m|110m [--clients 16] [--requests 64] [--reps 3] [--threads N] [--raw PATH]
/// </summary>
internal static class FragmentationHarness
{
    private const string Prompt = "Once upon a time";

    private sealed record Result(string Method, double Seconds, long Decoded, double DecodeSeconds, long Decodes, long Runs, long Moves)
    {
        public double WallTokensPerSecond => Decoded / Seconds;
        public double DecodeTokensPerSecond => Decoded / DecodeSeconds;
        public double RowsPerDecode => (double)Decoded / Math.Max(1, Decodes);
        public double RunsPerDecode => (double)Runs / Math.Max(1, Decodes);
    }

    public static int Run(string[] args)
    {
        string model = Arg(args, "--model") ?? "15m";
        int clients = int.Parse(Arg(args, "--clients") ?? "16", CultureInfo.InvariantCulture);
        int requests = int.Parse(Arg(args, "--requests") ?? "64", CultureInfo.InvariantCulture);
        int reps = int.Parse(Arg(args, "--reps") ?? "3", CultureInfo.InvariantCulture);
        int? threads = Arg(args, "--threads") is { } t ? int.Parse(t, CultureInfo.InvariantCulture) : null;
        string? raw = Arg(args, "--raw");
        string path = EndToEndModels.Resolve(model);
        using var gguf = GgufModel.Load(path);
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        Console.WriteLine($"# fragment: {path} ({gguf.Info.Description}); {clients} clients, {requests} requests, threads {threads?.ToString(CultureInfo.InvariantCulture) ?? "default"}, " +
                          $"load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| rep | method | wall s | tokens/s (wall) | tokens/s (in decode) | rows/decode | id runs/decode | moves |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
        var all = new List<Result>();
        for (int rep = -1; rep < reps; rep++)
        {
            // rep -1 warms every path up (JIT, page cache) and is not reported.
            var on = Workload(gguf, kernels, clients, requests, threads, compact: true);
            var off = Workload(gguf, kernels, clients, requests, threads, compact: false);
            Result? c = raw is null ? null : RawLoop(raw, path, (int)Math.Round(on.RowsPerDecode), threads);
            if (rep < 0) continue;
            foreach (var r in c is null ? new[] { on, off } : [on, off, c])
            {
                all.Add(r);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {rep + 1} | {r.Method} | {r.Seconds:F2} | {r.WallTokensPerSecond:F0} | {r.DecodeTokensPerSecond:F0} | {r.RowsPerDecode:F1} | {r.RunsPerDecode:F2} | {r.Moves} |"));
            }
        }
        foreach (var g in all.GroupBy(r => r.Method.StartsWith("C loop", StringComparison.Ordinal) ? "C loop" : r.Method))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"# {g.Key}: tokens/s in decode {g.Min(r => r.DecodeTokensPerSecond):F0}-{g.Max(r => r.DecodeTokensPerSecond):F0}, wall {g.Min(r => r.WallTokensPerSecond):F0}-{g.Max(r => r.WallTokensPerSecond):F0}"));
        return 0;
    }

    private static Result Workload(GgufModel model, IStepKernels kernels, int clients, int requests, int? threads, bool compact)
    {
        using var engine = new DecodingEngine(model, kernels, new EngineOptions
        {
            MaxSequences = 64, MaxSequenceLength = 64, Threads = threads, CompactSequences = compact, MaxQueuedRequests = 1024,
        });
        var reward = new LengthReward(1000); // cheap: the workload measures decoding and scheduling
        int next = -1;
        var clock = Stopwatch.StartNew();
        var loops = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
                await engine.RunAsync(Request(i, reward));
        })).ToArray();
        Task.WaitAll(loops);
        double seconds = clock.Elapsed.TotalSeconds;
        var s = engine.Status;
        return new Result(compact ? "engine (compaction on)" : "engine (compaction off)", seconds, s.TokensDecoded, s.DecodeTime.TotalSeconds,
            s.Decodes, s.DecodeRuns, s.SequenceMoves);
    }

    /// <summary>Request i of the workload: the same for every method (seeded by i).</summary>
    private static DecodingRequest Request(int i, IReward reward)
    {
        var random = new Random(1000 + i);
        int n = new[] { 1, 2, 4, 8 }[random.Next(4)];
        int tokens = random.Next(8, 49);
        ulong seed = (ulong)i;
        DecodingOptions options = (i % 4) switch
        {
            0 => new GenerationOptions { Samples = n, MaxTokens = tokens, Seed = seed },
            1 => new BestOfNOptions { N = n, MaxTokens = tokens, Seed = seed },
            2 => new RejectionOptions { N = 8, Alpha = 0.5, Every = 8, MaxTokens = Math.Max(tokens, 24), Seed = seed },
            _ => new BestOfNOptions { N = Math.Max(2, n), MaxTokens = tokens, Seed = seed },
        };
        return new DecodingRequest { Prompt = Prompt, Options = options, Reward = options is GenerationOptions ? null : reward };
    }

    /// <summary>The C loop over llama.h (contiguous ids 0..K-1) at K rows; its best of 3 repetitions.</summary>
    private static Result RawLoop(string binary, string model, int k, int? threads)
    {
        int t = threads ?? Tilt.Engine.Models.CpuTopology.DefaultThreads;
        var info = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { model, k.ToString(CultureInfo.InvariantCulture), t.ToString(CultureInfo.InvariantCulture), "16", "32", "1" })
            info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        var m = Regex.Match(output, @"tg_tok_s=([0-9.]+) step_ms=([0-9.]+)");
        if (!m.Success) throw new InvalidOperationException($"{binary} printed no throughput: {output}");
        double tokS = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        long decoded = (long)k * 32;
        double secs = decoded / tokS;
        return new Result($"C loop (K={k}, ids 0..{k - 1})", secs, decoded, secs, 32, 32, 0);
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
