using System.Text.Json;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models.Loading;
using Tilt.Tests;

namespace Tilt.Server.Tests;

public sealed class ErrorTests
{
    private static async Task<JsonElement> ExpectError(HttpResponseMessage response, int status, string? param)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {body}");
        Assert.DoesNotContain("   at ", body); // never a stack trace
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("type").GetString()));
        Assert.True(error.TryGetProperty("code", out _));
        Assert.Equal(param, error.GetProperty("param").GetString());
        return error;
    }

    [Theory]
    [InlineData("{\"prompt\": \"x\",", null)]                                                      // malformed JSON
    [InlineData("[1, 2]", null)]                                                                   // not an object
    [InlineData("{\"prompt\": \"x\", \"n\": \"two\"}", "n")]                                       // wrong type
    [InlineData("{\"prompt\": \"x\", \"max_tokens\": 1.5}", "max_tokens")]
    [InlineData("{\"prompt\": 42}", "prompt")]
    [InlineData("{\"max_tokens\": 4}", "prompt")]
    [InlineData("{\"prompt\": \"x\", \"temperature\": 3}", "temperature")]
    [InlineData("{\"prompt\": \"x\", \"top_p\": 0}", "top_p")]
    [InlineData("{\"prompt\": \"x\", \"max_tokens\": 100000}", "max_tokens")]
    [InlineData("{\"prompt\": \"x\", \"n\": 17}", "n")]
    [InlineData("{\"prompt\": \"x\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\", \"j\", \"k\", \"l\", \"m\", \"n\", \"o\", \"p\", \"q\"]}", "stop")]
    [InlineData("{\"prompt\": \"x\", \"stop\": [\"\"]}", "stop")]
    [InlineData("{\"prompt\": \"x\", \"logprobs\": 21}", "logprobs")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"mcts\"}}", "alignment.strategy")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {}}", "alignment.strategy")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"bon\", \"beta\": NaN}}", "alignment.beta")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"tokenwise\", \"beta\": \"NaN\"}}", "alignment.beta")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"tokenwise\", \"beta\": 0}}", "alignment.beta")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"soft-bon\", \"lambda\": 0}}", "alignment.lambda")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"soft-bon\", \"lambda\": -1e300}}", "alignment.lambda")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"tokenwise\", \"beta\": 1e-300}}", "alignment.beta")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"blockwise\", \"beta\": 1e-31}}", "alignment.beta")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"bon\", \"n\": 65}}", "alignment.n")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"blockwise\", \"k\": 0}}", "alignment.k")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"blockwise\", \"block\": 257}}", "alignment.block")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"tokenwise\", \"top_k\": 65}}", "alignment.top_k")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"tokenwise\", \"top_k\": 0}}", "alignment.top_k")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"blockwise\", \"selection\": \"best\"}}", "alignment.selection")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"rejection\", \"alpha\": 1}}", "alignment.alpha")]
    [InlineData("{\"prompt\": \"x\", \"max_tokens\": 8, \"alignment\": {\"strategy\": \"rejection\", \"every\": 8}}", "alignment.every")]
    [InlineData("{\"prompt\": \"x\", \"max_tokens\": 8, \"alignment\": {\"strategy\": \"rejection\"}}", "alignment.every")]
    [InlineData("{\"prompt\": \"x\", \"max_tokens\": 8, \"alignment\": {\"strategy\": \"rejection\", \"decide_at\": 8}}", "alignment.decide_at")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"rejection\", \"decide_at\": 0}}", "alignment.decide_at")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"bon\", \"stratgy\": 1}}", "alignment.stratgy")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"bon\", \"reward\": \"nosuchkind:1\"}}", "alignment.reward")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"bon\", \"reward\": \"lexicon:/etc/passwd\"}}", "alignment.reward")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"bon\", \"reward\": \"head:../../x\"}}", "alignment.reward")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"bon\", \"reward\": \"0.5*length:3+lexicon:../../etc/shadow\"}}", "alignment.reward")]
    [InlineData("{\"prompt\": \"x\", \"alignment\": {\"strategy\": \"blockwise\", \"value_head\": \"/etc/passwd\"}}", "alignment.value_head")]
    public async Task Bad_requests_are_400_naming_the_field(string body, string? param)
    {
        await using var host = await Host.StartAsync(Transport.InProcess);
        using var response = await host.PostAsync("/v1/completions", body);
        var error = await ExpectError(response, 400, param);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Bounds_name_the_limit_and_files_are_never_read()
    {
        await using var host = await Host.StartAsync(Transport.InProcess);
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "alignment": {"strategy": "blockwise", "k": 100}}"""))
        {
            var error = await ExpectError(r, 400, "alignment.k");
            Assert.Equal("alignment.k must be between 1 and 64, got 100", error.GetProperty("message").GetString());
            Assert.Equal("out_of_range", error.GetProperty("code").GetString());
        }
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "alignment": {"strategy": "soft-bon", "lambda": 0}}"""))
        {
            var error = await ExpectError(r, 400, "alignment.lambda");
            Assert.Equal("alignment.lambda must be a finite number >= 1E-30, got 0", error.GetProperty("message").GetString());
            Assert.Equal("invalid_value", error.GetProperty("code").GetString());
        }
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "alignment": {"strategy": "mcts"}}"""))
            Assert.Equal("unknown_strategy", (await ExpectError(r, 400, "alignment.strategy")).GetProperty("code").GetString());
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "alignment": {"strategy": "bon", "reward": "lexicon:/etc/passwd"}}"""))
            Assert.Contains("cannot make the server read files", (await ExpectError(r, 400, "alignment.reward")).GetProperty("message").GetString());
        // The prompt plus max_tokens must fit the context; the error says how many tokens fit.
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "max_tokens": 1000}"""))
            Assert.Contains("can be at most", (await ExpectError(r, 400, "max_tokens")).GetProperty("message").GetString());
    }

    [Theory]
    [InlineData(Transport.Loopback)]
    [InlineData(Transport.InProcess)]
    public async Task Unknown_model_and_route_are_404_and_a_large_body_is_413(Transport transport)
    {
        // Two models: a server with one answers whatever model a request names (MultiModelTests).
        await using var host = await Host.StartAsync(transport, new ServerOptions { Limits = new RequestLimits { MaxBodyBytes = 4096 } }, models: o =>
        {
            Host.Configure(o.AddModel("stories260K", TestPaths.DefaultModel));
            Host.Configure(o.AddModel("tales", TestPaths.DefaultModel));
        });
        using (var r = await host.PostAsync("/v1/completions", """{"model": "gpt-5", "prompt": "x"}"""))
            Assert.Equal("model_not_found", (await ExpectError(r, 404, "model")).GetProperty("code").GetString());
        using (var r = await host.Client.GetAsync("/v1/nothing"))
            await ExpectError(r, 404, null);
        using (var r = await host.Client.GetAsync("/v1/models/gpt-5"))
            await ExpectError(r, 404, "model");
        string big = "{\"prompt\": \"" + new string('a', 8192) + "\"}";
        using (var r = await host.PostAsync("/v1/completions", big))
            Assert.Equal("request_too_large", (await ExpectError(r, 413, null)).GetProperty("code").GetString());
        using (var r = await host.PostAsync("/v1/chat/completions", """{"messages": [{"role": "wizard", "content": "x"}]}"""))
            await ExpectError(r, 400, "messages[0].role");
    }

    [Theory]
    [InlineData(Transport.Loopback)]
    [InlineData(Transport.InProcess)]
    public async Task The_api_key_guards_every_route_but_health(Transport transport)
    {
        await using var host = await Host.StartAsync(transport, new ServerOptions { ApiKey = "s3cret" });
        using (var r = await host.Client.GetAsync("/health")) Assert.Equal(200, (int)r.StatusCode);
        using (var r = await host.Client.GetAsync("/health/ready")) Assert.Equal(200, (int)r.StatusCode);
        using (var r = await host.Client.GetAsync("/health/live")) Assert.Equal(200, (int)r.StatusCode);
        using (var r = await host.Client.GetAsync("/health/other")) await ExpectError(r, 401, null);
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "max_tokens": 2}"""))
            Assert.Equal("invalid_api_key", (await ExpectError(r, 401, null)).GetProperty("code").GetString());
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "max_tokens": 2}""", key: "s3cre"))
            await ExpectError(r, 401, null);
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "max_tokens": 2}""", key: "s3cret!"))
            await ExpectError(r, 401, null);
        using (var r = await host.Client.GetAsync("/metrics")) await ExpectError(r, 401, null);
        using (var r = await host.Client.GetAsync("/v1/models")) await ExpectError(r, 401, null);
        using (var r = await host.Client.GetAsync("/nothing")) await ExpectError(r, 401, null); // no probing of routes either
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "max_tokens": 2}""", key: "s3cret"))
            Assert.Equal(200, (int)r.StatusCode);
    }

    [Fact]
    public async Task Health_is_503_until_the_model_is_loaded_and_requests_wait_with_503()
    {
        var gate = new TaskCompletionSource();
        // The model loads only once the gate opens (on the host's loading thread, so blocking it there is what a slow load does).
        await using var host = await Host.StartAsync(Transport.Loopback, models: o => Host.Configure(o.AddModel("stories260K", TestPaths.DefaultModel)).ModelFactory = () =>
        {
            gate.Task.Wait();
            return LanguageModel.Load(TestPaths.DefaultModel);
        }, waitForModel: false);
        foreach (var path in new[] { "/health", "/health/ready" })
        {
            using var r = await host.Client.GetAsync(path);
            Assert.Equal(503, (int)r.StatusCode);
            Assert.Contains("loading", await r.Content.ReadAsStringAsync());
        }
        // Alive while loading: a liveness probe must not restart a replica that is still reading its model.
        using (var r = await host.Client.GetAsync("/health/live")) Assert.Equal(200, (int)r.StatusCode);
        using (var r = await host.PostAsync("/v1/completions", """{"prompt": "x", "max_tokens": 2}"""))
        {
            await ExpectError(r, 503, null);
            Assert.True(r.Headers.Contains("Retry-After"));
        }
        gate.SetResult();
        await host.Server.ModelReady.WaitAsync(TimeSpan.FromSeconds(60));
        using (var r = await host.Client.GetAsync("/health")) Assert.Equal(200, (int)r.StatusCode);
    }

    [Fact]
    public async Task Readiness_carries_the_load_and_is_503_while_the_engine_is_full_liveness_stays_200()
    {
        // Capacity 1 sequence and no waiting room: one running request makes the replica full for a balancer.
        await using var host = await Host.StartAsync(Transport.Loopback, engine: new EngineOptions { MaxSequences = 1, MaxQueuedRequests = 0, KvCacheType = Engine.Models.KvCacheType.F32 });
        using (var r = await host.Client.GetAsync("/health/ready"))
        {
            Assert.Equal(200, (int)r.StatusCode);
            var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("ok", body.GetProperty("status").GetString());
            Assert.Equal(0, body.GetProperty("queued_requests").GetInt32());
            Assert.Equal(0, body.GetProperty("max_queued_requests").GetInt32());
            Assert.Equal(0, body.GetProperty("live_sequences").GetInt32());
            Assert.Equal(1, body.GetProperty("max_sequences").GetInt32());
        }
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var running = await host.PostAsync("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 400, "stream": true, "seed": 1}""", token: cancel.Token);
        var reader = new StreamReader(await running.Content.ReadAsStreamAsync(cancel.Token));
        Assert.StartsWith("data: {", await reader.ReadLineAsync(cancel.Token)); // running: its sequence is taken
        foreach (var path in new[] { "/health/ready", "/health" })
        {
            using var r = await host.Client.GetAsync(path);
            Assert.Equal(503, (int)r.StatusCode);
            var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("busy", body.GetProperty("status").GetString());
            Assert.Equal(1, body.GetProperty("running_requests").GetInt32());
            Assert.Equal(1, body.GetProperty("live_sequences").GetInt32());
        }
        using (var r = await host.Client.GetAsync("/health/live")) Assert.Equal(200, (int)r.StatusCode);
        await cancel.CancelAsync();
    }

    [Fact]
    public async Task A_full_queue_is_503_with_Retry_After()
    {
        // Capacity 1 sequence and no waiting room: long requests fill it and the next is refused at once.
        await using var host = await Host.StartAsync(Transport.Loopback, engine: new EngineOptions { MaxSequences = 1, MaxQueuedRequests = 0, KvCacheType = Engine.Models.KvCacheType.F32 });
        const string Long = """{"prompt": "Once upon a time", "max_tokens": 400, "stream": true, "seed": 1}""";
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // Sent together: the ones admitted or queued hold their place, the rest are refused without waiting.
        var pending = Enumerable.Range(0, 4).Select(_ => host.PostAsync("/v1/completions", Long, token: cancel.Token)).ToList();
        HttpResponseMessage? refused = null;
        var all = new List<Task<HttpResponseMessage>>(pending);
        try
        {
            while (refused is null && pending.Count > 0)
            {
                var done = await Task.WhenAny(pending);
                pending.Remove(done);
                if ((int)(await done).StatusCode != 200) refused = await done;
            }
            Assert.NotNull(refused);
            var error = await ExpectError(refused, 503, null);
            Assert.Equal("engine_busy", error.GetProperty("code").GetString());
            Assert.Equal("1", refused.Headers.GetValues("Retry-After").Single());
        }
        finally
        {
            await cancel.CancelAsync();
            foreach (var t in all)
            {
                try
                {
                    (await t).Dispose();
                }
                catch (OperationCanceledException)
                {
                    // a request still waiting for its headers when the test ended
                }
            }
        }
        using var metrics = await host.Client.GetAsync("/metrics");
        Assert.Matches("tilt_requests_total\\{route=\"/v1/completions\",outcome=\"busy\"\\} [1-3]", await metrics.Content.ReadAsStringAsync());
    }
}
