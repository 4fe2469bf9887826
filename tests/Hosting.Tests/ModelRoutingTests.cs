using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tilt.Engine;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models.Loading;
using Tilt.Engine.Requests;
using Tilt.Tests;

namespace Tilt.Hosting.Tests;

/// <summary>
/// What a server on AddTilt needs from Tilt.Hosting: aliases that resolve to one engine, loading in the background while
/// the host runs (with health and WhenLoaded telling the state), and the drain beginning when the application starts stopping.
/// </summary>
public sealed class ModelRoutingTests
{
    private static IHost Build(Action<TiltOptions> configure)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddTilt(configure);
        builder.Services.AddHealthChecks().AddTilt();
        return builder.Build();
    }

    private static readonly DecodingRequest Request = new() { Prompt = "Once", Options = new GenerationOptions { MaxTokens = 4, Seed = 1 } };

    private static async Task<HealthStatus> Health(IHost host) => (await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Status;

    [Fact]
    public void Aliases_lead_to_their_model_and_are_not_names()
    {
        using var host = Build(o =>
        {
            o.AddModel("small", TestPaths.DefaultModel).Aliases.Add("tiny");
            var large = o.AddModel("large", TestPaths.DefaultModel);
            large.Aliases.AddRange(["big", "huge"]);
        });
        var engines = host.Services.GetRequiredService<ITiltEngines>();
        Assert.Equal(["small", "large"], engines.Names);
        Assert.Same(engines["large"], engines["BIG"]);
        Assert.Same(engines["large"], engines["huge"]);
        Assert.Same(engines["small"], engines["tiny"]);
        Assert.Equal(["big", "huge"], engines["big"].Aliases);
        Assert.False(engines.TryGet("medium", out _));
        Assert.Contains("configured: small, large", Assert.Throws<KeyNotFoundException>(() => engines["medium"]).Message);
    }

    [Fact]
    public async Task Aliases_that_would_make_a_name_ambiguous_fail_the_start_naming_the_setting()
    {
        using var host = Build(o =>
        {
            o.AddModel("small", TestPaths.DefaultModel).Aliases.AddRange(["", "large", "shared"]);
            o.AddModel("large", TestPaths.DefaultModel).Aliases.Add("SHARED");
        });
        string message = (await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync())).Message;
        Assert.Contains("Tilt:Models:small:Aliases: an alias is empty", message);
        Assert.Contains("Tilt:Models:small:Aliases: 'large' is already the name of a model", message);
        Assert.Contains("Tilt:Models:large:Aliases: 'SHARED' is already an alias of 'small'", message);
    }

    [Fact]
    public async Task In_the_background_the_host_runs_while_a_model_loads_and_health_follows_it()
    {
        var gate = new TaskCompletionSource();
        using var host = Build(o =>
        {
            o.LoadInBackground = true;
            o.AddModel("stories", TestPaths.DefaultModel).ModelFactory = () =>
            {
                gate.Task.Wait();
                return LanguageModel.Load(TestPaths.DefaultModel);
            };
        });
        var engines = host.Services.GetRequiredService<ITiltEngines>();
        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(30)); // returns with the model still held at the gate
        var engine = engines["stories"];
        Assert.Equal(TiltEngineState.Loading, engine.State);
        Assert.False(engines.WhenLoaded.IsCompleted);
        Assert.Equal(HealthStatus.Unhealthy, await Health(host));
        Assert.Contains("not loaded", (await Assert.ThrowsAsync<InvalidOperationException>(() => engine.RunAsync(Request))).Message);

        gate.SetResult();
        await engines.WhenLoaded.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(TiltEngineState.Loaded, engine.State);
        Assert.Equal(HealthStatus.Healthy, await Health(host));
        Assert.Single(await engine.RunAsync(Request));
        await host.StopAsync();
    }

    [Fact]
    public async Task A_model_that_fails_to_load_in_the_background_faults_WhenLoaded_and_stays_unhealthy()
    {
        using var host = Build(o =>
        {
            o.LoadInBackground = true;
            o.AddModel("broken", TestPaths.DefaultModel).ModelFactory = () => throw new TiltException("the weights are gone");
        });
        var engines = host.Services.GetRequiredService<ITiltEngines>();
        await host.StartAsync();
        var error = await Assert.ThrowsAsync<TiltException>(() => engines.WhenLoaded.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("Tilt:Models:broken: cannot load the model factory's model: the weights are gone", error.Message);
        var engine = engines["broken"];
        Assert.Equal(TiltEngineState.Failed, engine.State);
        Assert.Same(error, engine.LoadError);
        Assert.Contains("the weights are gone", (await Assert.ThrowsAsync<InvalidOperationException>(() => engine.RunAsync(Request))).Message);
        Assert.Equal(HealthStatus.Unhealthy, await Health(host));
        await host.StopAsync();
    }

    [Fact]
    public async Task An_idle_engine_without_a_waiting_room_is_healthy_and_full_only_while_its_sequences_are_taken()
    {
        using var host = Build(o =>
        {
            var m = o.AddModel("stories", TestPaths.DefaultModel);
            m.MaxSequences = 1;
            m.MaxQueuedRequests = 0;
        });
        await host.StartAsync();
        var engine = host.Services.GetRequiredService<ITiltEngines>().Default;
        Assert.False(engine.IsFull);
        Assert.Equal(HealthStatus.Healthy, await Health(host));

        // A long request holds the one sequence: a new one would be refused, so the engine is full (Degraded).
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = engine.StreamAsync(new DecodingRequest { Prompt = "Once", Options = new GenerationOptions { MaxTokens = 400, Seed = 1 } }, cancel.Token)
            .GetAsyncEnumerator(cancel.Token);
        Assert.True(await events.MoveNextAsync()); // running
        Assert.True(engine.IsFull);
        Assert.Equal(HealthStatus.Degraded, await Health(host));
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => { while (await events.MoveNextAsync()) { } });
        await events.DisposeAsync();
        await host.StopAsync();
    }

    [Fact]
    public async Task Engines_stop_admitting_as_soon_as_the_application_starts_stopping()
    {
        using var host = Build(o => o.AddModel("stories", TestPaths.DefaultModel));
        await host.StartAsync();
        var engine = host.Services.GetRequiredService<ITiltEngines>().Default;
        // What a web server's stop relies on: requests end within the drain while it waits for them, before the host
        // reaches Tilt's own hosted service.
        host.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();
        Assert.Equal(TiltEngineState.Stopped, engine.State);
        await Assert.ThrowsAsync<EngineStoppingException>(() => engine.RunAsync(Request));
        await host.StopAsync();
    }
}
