using System.Diagnostics;
using System.Net.Http.Json;
using Tilt.Engine.Decoding;

namespace Tilt.Server.Tests;

/// <summary>
/// One request's slow reward must not stall the server (reliability issue, item 1): a token-wise request whose regex
/// backtracks for tens of milliseconds per candidate (under the per-candidate timeout) once held the scheduler's thread,
/// so an 8-token request sent meanwhile took 22.5 s instead of 0.05 s. Rewards are scored beside the decode loop now.
/// </summary>
[Collection(TimedTests.Name)]
public sealed class SlowRewardTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Short = """{"prompt": "Once upon a time", "max_tokens": 8, "seed": SEED}""";

    // The reported repro: (a+)+$ backtracks over the forced run of a's for every candidate token of every step.
    private const string Slow = """
        {"prompt": "Once upon a time", "max_tokens": 16, "prefill": "aaaaaaaaaaaaaaaaaa!",
         "alignment": {"strategy": "tokenwise", "top_k": 64, "reward": "regex:(a+)+$"}}
        """;

    private static async Task<TimeSpan[]> FourShort(Host host, int round)
    {
        var times = await Task.WhenAll(Enumerable.Range(0, 4).Select(async i =>
        {
            var clock = Stopwatch.StartNew();
            var body = await host.PostJsonAsync("/v1/completions", Short.Replace("SEED", (round * 4 + i).ToString()));
            Assert.NotEmpty(body.GetProperty("choices")[0].GetProperty("text").GetString()!);
            return clock.Elapsed;
        }));
        return times;
    }

    [Fact]
    public async Task Four_short_requests_keep_their_solo_latency_while_a_backtracking_reward_runs()
    {
        // The regex limit is raised so that a loaded machine cannot end the slow request early with a timeout: the test
        // needs it running (for seconds per step) while the short ones are measured.
        var options = new ServerOptions { Limits = new RequestLimits { RegexMatchTimeout = TimeSpan.FromSeconds(5) } };
        await using var host = await Host.StartAsync(options: options, engine: new EngineOptions { MaxSequences = 80, MaxSequenceLength = 128 });
        await FourShort(host, 0); // warm-up: JIT, prompt cache

        // Solo: the four short requests with nothing else running; the median of three rounds of each request's latency.
        var solo = new List<TimeSpan>();
        for (int round = 1; round <= 3; round++) solo.AddRange(await FourShort(host, round));

        using var stop = new CancellationTokenSource();
        var status = host.Model.Engine;
        long jobsBefore = status.Status!.ScoringJobs;
        var slow = host.Client.PostAsync("/v1/completions", new StringContent(Slow, System.Text.Encoding.UTF8, "application/json"), stop.Token);
        // Wait (bounded) until the slow request is being scored: its values have started beside the scheduler.
        var deadline = Stopwatch.StartNew();
        while (status.Status!.ScoringJobs == jobsBefore && !slow.IsCompleted)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "the slow request never started scoring");
            await Task.Delay(5);
        }

        var shared = new List<TimeSpan>();
        for (int round = 4; round <= 6; round++) shared.AddRange(await FourShort(host, round));
        bool stillRunning = !slow.IsCompleted;
        await stop.CancelAsync();
        string ended = "";
        try
        {
            var response = await slow;
            ended = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
        }
        catch (OperationCanceledException)
        {
            // The client gave up on it, as intended: the server cancels the request.
        }

        Assert.True(stillRunning, $"the slow request ended before the short ones ({ended}): the test measured nothing");
        // 2x the solo median, with a 100 ms floor so that scheduling noise on a loaded 2-core runner cannot fail a 20 ms
        // request; the failure this guards against took 22.5 s.
        var soloMedian = Median(solo);
        var limit = TimeSpan.FromTicks(Math.Max(2 * soloMedian.Ticks, TimeSpan.FromMilliseconds(100).Ticks));
        var sharedMedian = Median(shared);
        output.WriteLine($"short requests: solo median {soloMedian.TotalMilliseconds:F0} ms, beside the slow request median {sharedMedian.TotalMilliseconds:F0} ms, " +
                         $"slowest {shared.Max().TotalMilliseconds:F0} ms; scoring jobs {status.Status!.ScoringJobs}, parked {status.Status!.ScoringParked}");
        Assert.True(sharedMedian <= limit,
            $"short requests took {sharedMedian.TotalMilliseconds:F0} ms (median) beside the slow one, {soloMedian.TotalMilliseconds:F0} ms alone; limit {limit.TotalMilliseconds:F0} ms");
        Assert.True(shared.Max() < TimeSpan.FromSeconds(2), $"slowest short request took {shared.Max().TotalMilliseconds:F0} ms");
    }

    private static TimeSpan Median(List<TimeSpan> times)
    {
        var sorted = times.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}

/// <summary>
/// Tests that compare latencies run alone: xunit runs test classes in parallel, and on a 2-core runner another class's
/// server beside a latency comparison is exactly the noise the comparison must not see (one run measured 116 ms against a
/// 35 ms solo median while other classes ran, 36-57 ms alone).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimedTests
{
    public const string Name = "timed (runs alone)";
}
