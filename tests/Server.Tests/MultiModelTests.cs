using System.Text.Json;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models.Loading;
using Tilt.Hosting;
using Tilt.Tests;

namespace Tilt.Server.Tests;

/// <summary>
/// Several models in one server (built by Tilt.Hosting's AddTilt): routing by the request's model field and aliases, the
/// model list, per-model health and metrics; and a one-model server answering any name, as llama-server does.
/// </summary>
public sealed class MultiModelTests
{
    // The same file under two names, with capacities that tell the engines apart: 'small' holds 4 sequences, 'large' 16.
    private static void TwoModels(TiltOptions o)
    {
        Host.Configure(o.AddModel("small", TestPaths.DefaultModel)).MaxSequences = 4;
        var large = Host.Configure(o.AddModel("large", TestPaths.DefaultModel));
        large.MaxSequences = 16;
        large.Aliases.Add("big");
    }

    private static long Decoded(Host host, string model) => host.Server.Engines[model].Status!.TokensDecoded;

    private static async Task<JsonElement> ExpectModelNotFound(HttpResponseMessage response, string model)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 404, $"expected 404, got {(int)response.StatusCode}: {body}");
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal("not_found_error", error.GetProperty("type").GetString());
        Assert.Equal($"the model '{model}' does not exist; this server serves 'small', 'large' (aliases 'big')", error.GetProperty("message").GetString());
        return error;
    }

    [Fact]
    public async Task Two_models_are_listed_and_each_request_runs_on_the_engine_it_names()
    {
        await using var host = await Host.StartAsync(models: TwoModels);
        var list = JsonDocument.Parse(await host.Client.GetStringAsync("/v1/models")).RootElement.GetProperty("data");
        Assert.Equal(["small", "large"], list.EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        Assert.False(list[0].TryGetProperty("aliases", out _));
        Assert.Equal(["big"], list[1].GetProperty("aliases").EnumerateArray().Select(a => a.GetString()));
        var card = JsonDocument.Parse(await host.Client.GetStringAsync("/v1/models/big")).RootElement;
        Assert.Equal("large", card.GetProperty("id").GetString());

        // Best-of-8 fits only the large engine: the small one refuses it by its own capacity.
        const string BestOf8 = "\"alignment\": {\"strategy\": \"bon\", \"n\": 8}, \"prompt\": \"Once upon a time\", \"max_tokens\": 8, \"seed\": 2";
        using (var r = await host.PostAsync("/v1/completions", $$"""{"model": "small", {{BestOf8}}}"""))
        {
            string body = await r.Content.ReadAsStringAsync();
            Assert.Equal(400, (int)r.StatusCode);
            Assert.Contains("alignment.n must be between 1 and 4, got 8", body);
        }
        Assert.Equal(0, Decoded(host, "small"));
        Assert.Equal(0, Decoded(host, "large"));

        var large = await host.PostJsonAsync("/v1/completions", $$"""{"model": "large", {{BestOf8}}}""");
        Assert.Equal("large", large.GetProperty("model").GetString());
        Assert.Equal(0, Decoded(host, "small"));
        long afterLarge = Decoded(host, "large");
        Assert.True(afterLarge > 0);

        var small = await host.PostJsonAsync("/v1/chat/completions",
            """{"model": "small", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 8, "seed": 2}""");
        Assert.Equal("small", small.GetProperty("model").GetString());
        Assert.True(Decoded(host, "small") > 0);
        Assert.Equal(afterLarge, Decoded(host, "large"));

        // Each model's series carry its name.
        string metrics = await host.Client.GetStringAsync("/metrics");
        Assert.Contains("tilt_max_sequences{model=\"small\"} 4", metrics);
        Assert.Contains("tilt_max_sequences{model=\"large\"} 16", metrics);
        Assert.Contains("tilt_reward_count{model=\"large\",strategy=\"bon\"} 1", metrics);
        Assert.DoesNotContain("tilt_reward_count{model=\"small\",strategy=\"bon\"}", metrics);
        Assert.Contains("tilt_tokens_generated_total{model=\"small\",strategy=\"generate\"}", metrics);
    }

    [Fact]
    public async Task An_alias_routes_to_its_model_and_the_response_names_the_model()
    {
        await using var host = await Host.StartAsync(Transport.InProcess, models: TwoModels);
        foreach (string name in new[] { "big", "BIG", "Large" })
        {
            var r = await host.PostJsonAsync("/v1/completions", $$"""{"model": "{{name}}", "prompt": "Once", "max_tokens": 4, "seed": 1}""");
            Assert.Equal("large", r.GetProperty("model").GetString());
        }
        var chunks = await host.StreamAsync("/v1/completions", """{"model": "big", "prompt": "Once", "max_tokens": 4, "seed": 1, "stream": true}""");
        Assert.All(chunks, c => Assert.Equal("large", c.GetProperty("model").GetString()));
        Assert.Equal(0, Decoded(host, "small"));
        Assert.True(Decoded(host, "large") > 0);
    }

    [Fact]
    public async Task With_several_models_an_unknown_name_is_404_and_no_name_is_the_first_model()
    {
        await using var host = await Host.StartAsync(Transport.InProcess, models: TwoModels);
        using (var r = await host.PostAsync("/v1/completions", """{"model": "gpt-4o", "prompt": "x", "max_tokens": 2}"""))
            await ExpectModelNotFound(r, "gpt-4o");
        using (var r = await host.PostAsync("/v1/chat/completions", """{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}"""))
            await ExpectModelNotFound(r, "stories260K");
        using (var r = await host.Client.GetAsync("/v1/models/gpt-4o"))
            Assert.Equal(404, (int)r.StatusCode);
        Assert.Equal(0, Decoded(host, "small") + Decoded(host, "large"));

        var unnamed = await host.PostJsonAsync("/v1/completions", """{"prompt": "Once", "max_tokens": 4, "seed": 1}""");
        Assert.Equal("small", unnamed.GetProperty("model").GetString());
    }

    [Theory]
    [InlineData(Transport.Loopback)]
    [InlineData(Transport.InProcess)]
    public async Task A_one_model_server_answers_any_model_name_with_its_own_id(Transport transport)
    {
        await using var host = await Host.StartAsync(transport);
        const string Request = """{"model": "gpt-4o", "prompt": "Once upon a time", "max_tokens": 8, "seed": 5}""";
        var named = await host.PostJsonAsync("/v1/completions", Request);
        Assert.Equal("stories260K", named.GetProperty("model").GetString());
        // The same output as a request that names the model itself: the name chose nothing.
        var own = await host.PostJsonAsync("/v1/completions", Request.Replace("gpt-4o", "stories260K", StringComparison.Ordinal));
        Assert.Equal(own.GetProperty("choices")[0].GetProperty("text").GetString(), named.GetProperty("choices")[0].GetProperty("text").GetString());

        var chat = await host.PostJsonAsync("/v1/chat/completions",
            """{"model": "llama-3-8b-instruct", "messages": [{"role": "user", "content": "Once"}], "max_tokens": 4, "seed": 1}""");
        Assert.Equal("stories260K", chat.GetProperty("model").GetString());
        var chunks = await host.StreamAsync("/v1/chat/completions",
            """{"model": "whatever", "messages": [{"role": "user", "content": "Once"}], "max_tokens": 4, "seed": 1, "stream": true}""");
        Assert.All(chunks, c => Assert.Equal("stories260K", c.GetProperty("model").GetString()));
    }

    [Fact]
    public async Task Health_covers_every_model_it_is_ready_only_when_all_are_loaded()
    {
        var gate = new TaskCompletionSource();
        var secondLoading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var host = await Host.StartAsync(Transport.Loopback, waitForModel: false, models: o =>
        {
            Host.Configure(o.AddModel("first", TestPaths.DefaultModel));
            // Models load one after another, so the second one's factory runs once the first is loaded; it then waits for
            // the gate (on the host's loading thread, as a slow load would).
            Host.Configure(o.AddModel("second", TestPaths.DefaultModel)).ModelFactory = () =>
            {
                secondLoading.SetResult();
                gate.Task.Wait();
                return LanguageModel.Load(TestPaths.DefaultModel);
            };
        });
        await secondLoading.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(TiltEngineState.Loaded, host.Server.Engines["first"].State);
        Assert.Equal(TiltEngineState.Loading, host.Server.Engines["second"].State);
        using (var r = await host.Client.GetAsync("/health/ready"))
        {
            Assert.Equal(503, (int)r.StatusCode);
            Assert.Equal("loading", JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());
        }
        using (var r = await host.PostAsync("/v1/completions", """{"model": "first", "prompt": "x", "max_tokens": 2}"""))
            Assert.Equal(503, (int)r.StatusCode);

        gate.SetResult();
        await host.Server.ModelReady.WaitAsync(TimeSpan.FromSeconds(60));
        using var ready = await host.Client.GetAsync("/health/ready");
        Assert.Equal(200, (int)ready.StatusCode);
        var body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("ok", body.GetProperty("status").GetString());
        Assert.False(body.TryGetProperty("model", out _)); // several models: no one id at the top
        Assert.Equal(128, body.GetProperty("max_sequences").GetInt32()); // 64 + 64
        var models = body.GetProperty("models").EnumerateArray().ToList();
        Assert.Equal(["first", "second"], models.Select(m => m.GetProperty("model").GetString()));
        Assert.All(models, m => Assert.Equal("ok", m.GetProperty("status").GetString()));
    }

    [Fact]
    public async Task A_busy_model_does_not_take_the_replica_out_while_another_has_room()
    {
        await using var host = await Host.StartAsync(Transport.Loopback, models: o =>
        {
            Host.Configure(o.AddModel("tight", TestPaths.DefaultModel), new EngineOptions { MaxSequences = 1, MaxQueuedRequests = 0 });
            Host.Configure(o.AddModel("roomy", TestPaths.DefaultModel));
        });
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var running = await host.PostAsync("/v1/completions",
            """{"model": "tight", "prompt": "Once upon a time", "max_tokens": 400, "stream": true, "seed": 1}""", token: cancel.Token);
        var reader = new StreamReader(await running.Content.ReadAsStreamAsync(cancel.Token));
        Assert.StartsWith("data: {", await reader.ReadLineAsync(cancel.Token)); // running: tight's one sequence is taken
        using (var r = await host.Client.GetAsync("/health/ready"))
        {
            Assert.Equal(200, (int)r.StatusCode);
            var models = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("models").EnumerateArray().ToList();
            Assert.Equal("busy", models[0].GetProperty("status").GetString());
            Assert.Equal("ok", models[1].GetProperty("status").GetString());
        }
        using (var r = await host.PostAsync("/v1/completions", """{"model": "tight", "prompt": "x", "max_tokens": 2}"""))
            Assert.Equal(503, (int)r.StatusCode);
        await host.PostJsonAsync("/v1/completions", """{"model": "roomy", "prompt": "x", "max_tokens": 2}""");
        await cancel.CancelAsync();
    }
}
