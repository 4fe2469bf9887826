using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tilt.Engine;
using Tilt.Engine.Decoding;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Tests;
using Tilt.Engine.Requests;

namespace Tilt.Hosting.Tests;

/// <summary>AddTilt in a real Generic Host on stories260K: options checked at start, load, requests, health, shutdown.</summary>
public sealed class HostingTests
{
    private static IHost Build(Action<TiltOptions> configure)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddTilt(configure);
        builder.Services.AddHealthChecks().AddTilt();
        return builder.Build();
    }

    private static async Task<string> StartFails(Action<TiltOptions> configure)
    {
        using var host = Build(configure);
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        return e.Message;
    }

    [Fact]
    public async Task A_missing_model_path_fails_the_start_naming_the_setting()
    {
        Assert.Contains("Tilt:Models:stories:Path is required", await StartFails(o => o.Models["stories"] = new TiltModelOptions()));
        string missing = Path.Combine(Path.GetTempPath(), $"tilt-no-such-{Guid.NewGuid():N}.gguf");
        Assert.Contains($"Tilt:Models:stories:Path: {missing} not found", await StartFails(o => o.AddModel("stories", missing)));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(257)]
    public async Task A_capacity_outside_1_to_256_fails_the_start_naming_the_setting(int capacity)
    {
        string message = await StartFails(o => o.AddModel("stories", TestPaths.DefaultModel).MaxSequences = capacity);
        Assert.Contains($"Tilt:Models:stories:MaxSequences must be between 1 and 256, got {capacity}", message);
        Assert.DoesNotContain(":Path", message);
    }

    [Fact]
    public async Task Other_bad_settings_are_named_too()
    {
        string message = await StartFails(o =>
        {
            var m = o.AddModel("stories", TestPaths.DefaultModel);
            m.MaxSequenceLength = 1;
            m.MaxQueuedRequests = -1;
            m.Threads = 0;
            o.DrainTimeout = TimeSpan.FromSeconds(-1);
            o.DefaultModel = "other";
        });
        Assert.Contains("Tilt:Models:stories:MaxSequenceLength must be between 2 and 1048576, got 1", message);
        Assert.Contains("Tilt:Models:stories:MaxQueuedRequests must be between 0 and 100000, got -1", message);
        Assert.Contains("Tilt:Models:stories:Threads must be between 1 and 4096, got 0", message);
        Assert.Contains("Tilt:DrainTimeout must be between 0 and 10 minutes", message);
        Assert.Contains("Tilt:DefaultModel: 'other' is not a configured model (configured: stories)", message);
        Assert.Contains("Tilt:Models: no model is configured", await StartFails(_ => { }));
    }

    [Fact]
    public async Task A_file_that_is_not_a_model_fails_the_start_naming_the_model_setting()
    {
        string bad = Path.Combine(Path.GetTempPath(), $"tilt-not-a-model-{Guid.NewGuid():N}.gguf");
        await File.WriteAllTextAsync(bad, "not a gguf file");
        try
        {
            using var host = Build(o => o.AddModel("stories", bad));
            var e = await Assert.ThrowsAsync<TiltException>(() => host.StartAsync());
            Assert.StartsWith($"Tilt:Models:stories: cannot load {bad}:", e.Message);
        }
        finally
        {
            File.Delete(bad);
        }
    }

    [Fact]
    public async Task The_host_loads_the_model_at_start_serves_requests_reports_health_and_refuses_after_stop()
    {
        using var host = Build(o => o.AddModel("stories", TestPaths.DefaultModel).MaxSequences = 8);
        var engines = host.Services.GetRequiredService<ITiltEngines>();
        var health = host.Services.GetRequiredService<HealthCheckService>();
        var request = new DecodingRequest
        {
            Prompt = "Once upon a time",
            Options = new BestOfNOptions { N = 4, MaxTokens = 24, Seed = 3 },
            Reward = LexiconReward.LoadBuiltIn(LexiconReward.Sentiment),
        };

        Assert.Equal(["stories"], engines.Names);
        Assert.Same(engines["stories"], engines["STORIES"]);
        Assert.Same(engines.Default, engines["stories"]);
        Assert.Contains("configured: stories", Assert.Throws<KeyNotFoundException>(() => engines["nope"]).Message);
        Assert.Contains("not loaded", (await Assert.ThrowsAsync<InvalidOperationException>(() => engines.Default.RunAsync(request))).Message);
        Assert.Equal(HealthStatus.Unhealthy, (await health.CheckHealthAsync()).Status);

        await host.StartAsync();
        var engine = engines.Default;
        Assert.True(engine.IsLoaded);
        Assert.Equal(512, engine.Model.VocabularySize);
        var samples = await engine.RunAsync(request);
        var best = Assert.Single(samples);
        Assert.Equal(LexiconReward.LoadBuiltIn(LexiconReward.Sentiment).ScoreText(best.Text), best.Reward);
        var report = await health.CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, report.Status);
        var data = report.Entries["tilt"].Data;
        Assert.Equal(true, data["stories.loaded"]);
        Assert.Equal(0, data["stories.queued"]);
        Assert.Equal(8, data["stories.maxSequences"]);

        await host.StopAsync();
        Assert.False(engine.IsLoaded);
        await Assert.ThrowsAsync<EngineStoppingException>(() => engine.RunAsync(request));
        Assert.Equal(HealthStatus.Unhealthy, (await health.CheckHealthAsync()).Status);
    }

    [Fact]
    public async Task Stopping_the_host_cancels_an_in_flight_request_cleanly()
    {
        using var host = Build(o =>
        {
            o.AddModel("stories", TestPaths.DefaultModel).MaxSequences = 16;
            o.DrainTimeout = TimeSpan.Zero;
        });
        await host.StartAsync();
        var engine = host.Services.GetRequiredService<ITiltEngines>().Default;
        // 16 samples of up to 500 tokens at temperature 2: the stop token (1 of 512) rarely comes, so the request runs
        // for hundreds of iterations; the host stops right after its first token.
        var request = new DecodingRequest
        {
            Prompt = "Once",
            Options = new GenerationOptions { Samples = 16, MaxTokens = 500, Seed = 5, Sampling = new SamplingParameters(Temperature: 2f) },
        };
        int events = 0, completed = 0;
        Task stop = Task.CompletedTask;
        var cancelled = await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var e in engine.StreamAsync(request))
            {
                if (e is SampleCompleted) completed++;
                if (events++ == 0) stop = host.StopAsync();
            }
        });
        Assert.Contains("shut down", cancelled.Message);
        await stop.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.False(engine.IsLoaded);
        Assert.InRange(completed, 0, 15);
    }
}
