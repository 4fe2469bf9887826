using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Server;
using Tilt.Engine.Models.Loading;
using Tilt.Engine.Requests;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Bench.Serving;

/// <summary>
/// A bounded loopback load generator for <c>tilt serve</c>: C concurrent streaming clients send a fixed number of requests
/// of one mix (best-of-4 or blockwise K=4 M=8, 32 tokens), over HTTP to an in-process Kestrel server and, on the same
/// model and engine, straight to <see cref="DecodingEngine.StreamAsync"/>; the two are interleaved per repetition.
/// Reports requests/s, tokens/s, time to first text and latency p50/p99, and the HTTP/in-process throughput ratio.
/// Usage: serve-load [--model FILE] [--clients 1,8,32] [--tokens 32] [--requests 64] [--reps 2] [--markdown FILE.md]
/// </summary>
internal static class ServeLoad
{
    private const string Prompt = "Once upon a time";

    private sealed record Mix(string Name, string AlignmentJson, Func<int, int, DecodingOptions> Options);

    private sealed record Cell(string Mix, int Clients, string Path, int Requests, double Seconds, long Tokens, double[] FirstText, double[] Latency)
    {
        public double RequestsPerSecond => Requests / Seconds;
        public double TokensPerSecond => Tokens / Seconds;
    }

    public static int Run(string[] args)
    {
        string? modelPath = Arg(args, "--model");
        int[] clients = (Arg(args, "--clients") ?? "1,8,32").Split(',').Select(int.Parse).ToArray();
        int tokens = int.Parse(Arg(args, "--tokens") ?? "32", CultureInfo.InvariantCulture);
        int requests = int.Parse(Arg(args, "--requests") ?? "64", CultureInfo.InvariantCulture);
        int reps = int.Parse(Arg(args, "--reps") ?? "2", CultureInfo.InvariantCulture);
        string? markdown = Arg(args, "--markdown");
        return RunAsync(modelPath ?? DefaultModel.Resolve(), clients, tokens, requests, reps, markdown).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(string modelPath, int[] clientCounts, int tokens, int requests, int reps, string? markdown)
    {
        var mixes = new[]
        {
            new Mix("best-of-4", """{"strategy": "bon", "n": 4, "reward": "length:1000"}""",
                (seed, max) => new BestOfNOptions { N = 4, MaxTokens = max, Seed = (ulong)seed }),
            new Mix("blockwise K=4 M=8", """{"strategy": "blockwise", "k": 4, "block": 8, "reward": "length:1000"}""",
                (seed, max) => new BlockwiseOptions { K = 4, BlockSize = 8, MaxTokens = max, Seed = (ulong)seed }),
        };
        await using var server = TiltServer.Create(new ServerOptions { Port = 0 },
            o => o.AddModel(Path.GetFileNameWithoutExtension(modelPath), modelPath).Backend = KernelBackend.Cpu);
        await server.StartAsync();
        var served = (await server.ModelReady).All[0];
        string address = server.Addresses.Single();
        using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.ConnectionClose = false;
        Console.Error.WriteLine($"model {served.Model.Info.Path} ({served.Model.Info.Description}); server {address}; {Environment.ProcessorCount} logical CPUs");

        // Warm-up: JIT and page cache for both paths.
        foreach (var mix in mixes)
        {
            await InProcess(served, mix, 2, 4, tokens);
            await Http(http, mix, 2, 4, tokens);
        }

        var cells = new List<Cell>();
        var wall = Stopwatch.StartNew();
        foreach (int c in clientCounts)
            foreach (var mix in mixes)
                for (int rep = 0; rep < reps; rep++)
                {
                    // Interleaved, so drift of the shared machine hits both paths alike.
                    cells.Add(await InProcess(served, mix, c, requests, tokens));
                    cells.Add(await Http(http, mix, c, requests, tokens));
                    Console.Error.WriteLine($"{mix.Name}, {c} clients, rep {rep}: in-process {cells[^2].RequestsPerSecond:F1} req/s, HTTP {cells[^1].RequestsPerSecond:F1} req/s");
                }

        string table = Table(cells, requests, tokens, reps, wall.Elapsed);
        Console.WriteLine(table);
        if (markdown is not null) await File.WriteAllTextAsync(markdown, table);
        await server.StopAsync();
        return 0;
    }

    private static async Task<Cell> InProcess(ServedModel served, Mix mix, int clients, int requests, int tokens)
    {
        return await Drive(mix.Name, clients, "in-process", requests, async i =>
        {
            var start = Stopwatch.GetTimestamp();
            double first = double.NaN;
            long count = 0;
            var request = new DecodingRequest { Prompt = Prompt, Options = mix.Options(i, tokens), Reward = RewardSpec.Parse("length:1000") };
            await foreach (var e in served.Engine.StreamAsync(request))
            {
                if (e is TextAccepted t && t.TextDelta.Length > 0 && double.IsNaN(first)) first = Stopwatch.GetElapsedTime(start).TotalSeconds;
                if (e is SampleCompleted s) count += s.Result.Tokens.Count;
            }
            return (first, Stopwatch.GetElapsedTime(start).TotalSeconds, count);
        });
    }

    private static Task<Cell> Http(HttpClient http, Mix mix, int clients, int requests, int tokens) =>
        Drive(mix.Name, clients, "HTTP", requests, async i =>
        {
            var start = Stopwatch.GetTimestamp();
            string body = $$"""{"prompt": "{{Prompt}}", "max_tokens": {{tokens}}, "seed": {{i}}, "stream": true, "stream_options": {"include_usage": true}, "alignment": {{mix.AlignmentJson}} }""";
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
            response.EnsureSuccessStatusCode();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            double first = double.NaN;
            long count = 0;
            bool done = false;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                string data = line[6..];
                if (data == "[DONE]") { done = true; break; }
                using var doc = JsonDocument.Parse(data);
                if (doc.RootElement.TryGetProperty("usage", out var usage)) count = usage.GetProperty("completion_tokens").GetInt64();
                foreach (var c in doc.RootElement.GetProperty("choices").EnumerateArray())
                    if (double.IsNaN(first) && c.GetProperty("text").GetString() is { Length: > 0 }) first = Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
            if (!done) throw new InvalidOperationException("a stream ended without [DONE]");
            return (first, Stopwatch.GetElapsedTime(start).TotalSeconds, count);
        });

    /// <summary>C workers take request numbers 0..N-1 from a shared counter until all are done.</summary>
    private static async Task<Cell> Drive(string mix, int clients, string path, int requests, Func<int, Task<(double First, double Latency, long Tokens)>> one)
    {
        int next = -1;
        var first = new double[requests];
        var latency = new double[requests];
        long tokens = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                var r = await one(i);
                first[i] = r.First;
                latency[i] = r.Latency;
                Interlocked.Add(ref tokens, r.Tokens);
            }
        })));
        return new Cell(mix, clients, path, requests, clock.Elapsed.TotalSeconds, tokens, first, latency);
    }

    private static double Percentile(double[] values, double p)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        double rank = p * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    private static string Table(List<Cell> cells, int requests, int tokens, int reps, TimeSpan wall)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{requests} streaming requests per cell, {tokens} tokens, {reps} interleaved repetitions (each shown), {Environment.ProcessorCount} logical CPUs, wall {wall.TotalSeconds:F0} s.");
        sb.AppendLine();
        sb.AppendLine("| mix | clients | path | req/s | tokens/s | TTFT p50 ms | TTFT p99 ms | latency p50 ms | latency p99 ms | HTTP / in-process req/s |");
        sb.AppendLine("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (int i = 0; i < cells.Count; i += 2)
        {
            foreach (var c in new[] { cells[i], cells[i + 1] })
            {
                string ratio = c.Path == "HTTP" ? (c.RequestsPerSecond / cells[i].RequestsPerSecond).ToString("F2", CultureInfo.InvariantCulture) : "";
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {c.Mix} | {c.Clients} | {c.Path} | {c.RequestsPerSecond:F1} | {c.TokensPerSecond:F0} | {Percentile(c.FirstText, 0.5) * 1e3:F1} | {Percentile(c.FirstText, 0.99) * 1e3:F1} | " +
                    $"{Percentile(c.Latency, 0.5) * 1e3:F1} | {Percentile(c.Latency, 0.99) * 1e3:F1} | {ratio} |");
            }
        }
        return sb.ToString();
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
