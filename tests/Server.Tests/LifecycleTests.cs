using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Tilt.Server.Tests;

public sealed class LifecycleTests
{
    // Slow enough that it is still running when the test acts: 64 candidate blocks of 8 tokens, 480 tokens.
    private const string LongStream = """{"prompt": "Once upon a time", "max_tokens": 480, "seed": 1, "stream": true, "alignment": {"strategy": "blockwise", "k": 64, "block": 8}}""";

    [Fact]
    public async Task A_client_that_disconnects_cancels_its_request()
    {
        await using var host = await Host.StartAsync(engine: new Engine.Decoding.EngineOptions { MaxSequences = 64, KvCacheType = Engine.Models.KvCacheType.F32 });
        var finished = new TaskCompletionSource<FinishedRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        host.Server.RequestFinished += r => finished.TrySetResult(r);

        var response = await host.PostAsync("/v1/completions", LongStream);
        Assert.Equal(200, (int)response.StatusCode);
        var stream = await response.Content.ReadAsStreamAsync();
        var reader = new StreamReader(stream);
        Assert.StartsWith("data: {", await reader.ReadLineAsync()); // the first block arrived: the request is running
        var aborted = Stopwatch.StartNew();
        response.Dispose(); // closes the connection

        var record = await finished.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("cancelled", record.Outcome);
        Assert.True(record.FramesSent < 480 / 8, $"{record.FramesSent} frames: the request ran to the end");
        // One blockwise step here is 64 sequences x 8 tokens; the engine stops at the next step. 10 s is generous on a shared box.
        Assert.True(aborted.Elapsed < TimeSpan.FromSeconds(10), $"cancellation took {aborted.Elapsed}");

        // Its sequences were freed: with a capacity of 64 sequences, a request that needs all 64 can run.
        var next = await host.PostJsonAsync("/v1/completions", """{"prompt": "x", "max_tokens": 2, "alignment": {"strategy": "blockwise", "k": 64, "block": 1}}""");
        Assert.Single(next.GetProperty("choices").EnumerateArray());
        using var metrics = await host.Client.GetAsync("/metrics");
        Assert.Contains("tilt_requests_total{route=\"/v1/completions\",outcome=\"cancelled\"} 1", await metrics.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Shutdown_lets_in_flight_requests_finish_and_refuses_new_ones()
    {
        await using var host = await Host.StartAsync(drain: TimeSpan.FromSeconds(60));
        var response = await host.PostAsync("/v1/completions",
            """{"prompt": "Once upon a time", "max_tokens": 200, "seed": 1, "stream": true, "alignment": {"strategy": "blockwise", "k": 16, "block": 8}}""");
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var first = await reader.ReadLineAsync();
        Assert.StartsWith("data: {", first);

        var stopping = host.Server.StopAsync();
        // New requests are refused: 503 "shutting_down" until Kestrel closes its listener, then the connection itself.
        Assert.True(host.Server.Draining);
        await AssertRefused(host.Client.GetAsync("/health"));
        await AssertRefused(host.PostAsync("/v1/completions", """{"prompt": "x", "max_tokens": 2}"""));
        string rest = await reader.ReadToEndAsync();
        Sse.Parse(first + "\n" + rest, requireDone: true); // the in-flight stream completed
        await stopping.WaitAsync(TimeSpan.FromSeconds(60));
        response.Dispose();
    }

    private static async Task AssertRefused(Task<HttpResponseMessage> request)
    {
        try
        {
            using var r = await request;
            Assert.Equal(503, (int)r.StatusCode);
            Assert.Contains(r.RequestMessage!.RequestUri!.AbsolutePath == "/health" ? "draining" : "shutting_down", await r.Content.ReadAsStringAsync());
        }
        catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.ConnectionError)
        {
            // the listener is already closed
        }
    }

    [Fact]
    public async Task Shutdown_cancels_what_outlives_the_drain_deadline()
    {
        await using var host = await Host.StartAsync(drain: TimeSpan.FromMilliseconds(300));
        var finished = new TaskCompletionSource<FinishedRequest>(TaskCreationOptions.RunContinuationsAsynchronously);
        host.Server.RequestFinished += r => finished.TrySetResult(r);
        var response = await host.PostAsync("/v1/completions", LongStream);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: {", await reader.ReadLineAsync());
        var clock = Stopwatch.StartNew();
        await host.Server.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var record = await finished.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotEqual("ok", record.Outcome);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"stopping took {clock.Elapsed}");
        response.Dispose();
    }

    [Fact]
    public async Task Thirty_two_concurrent_streaming_clients_all_complete_with_the_outputs_they_get_alone()
    {
        await using var host = await Host.StartAsync();
        string Body(int i) => (i % 4) switch
        {
            0 => $$"""{"prompt": "Once upon a time", "max_tokens": 32, "seed": {{i}}, "stream": true}""",
            1 => $$"""{"prompt": "The cat", "max_tokens": 32, "seed": {{i}}, "n": 2, "stream": true}""",
            2 => $$"""{"prompt": "Once upon a time", "max_tokens": 32, "seed": {{i}}, "stream": true, "alignment": {"strategy": "bon", "n": 4} }""",
            _ => $$"""{"prompt": "Lily", "max_tokens": 32, "seed": {{i}}, "stream": true, "alignment": {"strategy": "blockwise", "k": 4, "block": 8} }""",
        };
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var together = new ConcurrentDictionary<int, Dictionary<int, string>>();
        await Task.WhenAll(Enumerable.Range(0, 32).Select(async i =>
        {
            using var r = await host.PostAsync("/v1/completions", Body(i), token: deadline.Token);
            Assert.Equal(200, (int)r.StatusCode);
            var chunks = Sse.Parse(await r.Content.ReadAsStringAsync(deadline.Token), requireDone: true);
            together[i] = Sse.Texts(chunks);
        }));
        Assert.Equal(32, together.Count);
        for (int i = 0; i < 32; i++)
        {
            var alone = Sse.Texts(await host.StreamAsync("/v1/completions", Body(i)));
            Assert.Equal(alone, together[i]);
            Assert.All(alone.Values, t => Assert.NotEmpty(t));
        }
    }

    [Fact]
    public async Task Metrics_count_requests_by_outcome_tokens_rewards_and_latency()
    {
        await using var host = await Host.StartAsync();
        await host.PostJsonAsync("/v1/completions", """{"prompt": "Once", "max_tokens": 8, "seed": 1, "alignment": {"strategy": "bon", "n": 4}}""");
        await host.PostJsonAsync("/v1/completions", """{"prompt": "Once", "max_tokens": 8, "seed": 1}""");
        using (var bad = await host.PostAsync("/v1/completions", "{")) Assert.Equal(400, (int)bad.StatusCode);
        using var r = await host.Client.GetAsync("/metrics");
        Assert.StartsWith("text/plain", r.Content.Headers.ContentType!.ToString());
        string text = await r.Content.ReadAsStringAsync();
        Assert.Contains("tilt_requests_total{route=\"/v1/completions\",outcome=\"ok\"} 2", text);
        Assert.Contains("tilt_requests_total{route=\"/v1/completions\",outcome=\"bad_request\"} 1", text);
        Assert.Contains("tilt_queue_depth{model=\"stories260K\"} 0", text);
        Assert.Contains("tilt_live_sequences", text);
        Assert.Contains("tilt_reward_count{model=\"stories260K\",strategy=\"bon\"} 1", text);
        Assert.Contains("tilt_kl_count{model=\"stories260K\",strategy=\"bon\"} 1", text);
        Assert.Contains("tilt_step_latency_seconds_count{model=\"stories260K\"} 2", text);
        double Value(string name) => double.Parse(text.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal)).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Value("tilt_tokens_generated_total{model=\"stories260K\",strategy=\"bon\"}") >= 1);
        // Best-of-4 decodes four candidates and returns one: three quarters of its tokens are spent on rejected ones (up to stop tokens).
        Assert.True(Value("tilt_tokens_rejected_total{model=\"stories260K\",strategy=\"bon\"}") >= Value("tilt_tokens_generated_total{model=\"stories260K\",strategy=\"bon\"}"));
        Assert.Equal(0, Value("tilt_tokens_rejected_total{model=\"stories260K\",strategy=\"generate\"}"));
    }
}
