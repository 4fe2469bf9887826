using System.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tilt.Engine.Requests;
using Tilt.Tests;

namespace Tilt.Hosting.Tests;

/// <summary>One host with stories260K for every chat-client test (loading it is the slow part).</summary>
public sealed class ChatHostFixture : IAsyncLifetime
{
    public IHost Host { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddTilt(o => o.AddModel("stories", TestPaths.DefaultModel).MaxSequences = 16);
        Host = builder.Build();
        await Host.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await Host.StopAsync();
        Host.Dispose();
    }
}

/// <summary>TiltChatClient through Microsoft.Extensions.AI's own pipeline (logging and OpenTelemetry middleware).</summary>
public sealed class ChatClientTests(ChatHostFixture fixture) : IClassFixture<ChatHostFixture>
{
    private const string SourceName = "Tilt.Hosting.Tests.Chat";

    private IChatClient Pipeline(IChatClient? inner = null) =>
        new ChatClientBuilder(inner ?? fixture.Host.Services.GetRequiredService<IChatClient>())
            .UseLogging()
            .UseOpenTelemetry(sourceName: SourceName)
            .Build(fixture.Host.Services);

    private static ChatOptions Aligned(TiltAlignment alignment, int maxTokens = 24, long seed = 7) => new()
    {
        MaxOutputTokens = maxTokens,
        Seed = seed,
        AdditionalProperties = new() { [TiltAlignment.PropertyName] = alignment },
    };

    [Fact]
    public async Task Plain_generation_fills_text_usage_model_and_finish_reason()
    {
        var response = await Pipeline().GetResponseAsync("Once upon a time", new ChatOptions { MaxOutputTokens = 16, Seed = 1 });
        Assert.False(string.IsNullOrEmpty(response.Text));
        Assert.Equal("stories", response.ModelId);
        Assert.NotNull(response.Usage);
        Assert.True(response.Usage!.InputTokenCount > 0);
        Assert.InRange(response.Usage.OutputTokenCount!.Value, 1, 16);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
        Assert.NotNull(response.FinishReason);
        var sample = Assert.IsType<AlignedSample>(response.RawRepresentation);
        Assert.Equal(sample.Text, response.Text);
    }

    [Fact]
    public async Task Best_of_n_returns_reward_kl_and_candidates_and_a_seed_repeats_it()
    {
        var alignment = new TiltAlignment { Strategy = DecodingStrategy.BestOfN, N = 4, Reward = "lexicon:sentiment", ReturnCandidates = true };
        var first = await Pipeline().GetResponseAsync("Once upon a time", Aligned(alignment));
        var result = Assert.IsType<TiltAlignmentResult>(first.AdditionalProperties![TiltAlignment.PropertyName]);
        Assert.Equal(DecodingStrategy.BestOfN, result.Strategy);
        Assert.True(double.IsFinite(result.Reward));
        Assert.Equal("best_of_n_estimate", result.KlMethod);
        Assert.Equal("fine", result.KlBand);
        Assert.NotNull(result.KlBound);
        Assert.InRange(result.Kl, 0, result.KlBound!.Value + 1e-9);
        Assert.Equal(4, result.Candidates.Count);
        Assert.Equal(result.Candidates.Max(c => c.Reward), result.Reward);
        Assert.True(first.Usage!.AdditionalCounts!["tilt.tokens_evaluated"] >= first.Usage.OutputTokenCount);

        var again = await Pipeline().GetResponseAsync("Once upon a time", Aligned(alignment));
        Assert.Equal(first.Text, again.Text);
    }

    [Fact]
    public async Task Soft_best_of_n_runs_through_a_chat_and_bad_fields_name_the_property()
    {
        var alignment = new TiltAlignment { Strategy = DecodingStrategy.SoftBestOfN, N = 4, Lambda = 0.5, Reward = "lexicon:sentiment", ReturnCandidates = true };
        var response = await Pipeline().GetResponseAsync("Once upon a time", Aligned(alignment, maxTokens: 12));
        var result = Assert.IsType<TiltAlignmentResult>(response.AdditionalProperties![TiltAlignment.PropertyName]);
        Assert.Equal(DecodingStrategy.SoftBestOfN, result.Strategy);
        Assert.Equal(4, result.Candidates.Count);

        var e = await Assert.ThrowsAsync<ArgumentException>(() => Pipeline().GetResponseAsync("x", Aligned(alignment with { Lambda = 0 })));
        Assert.StartsWith("TiltAlignment.Lambda must be a finite number >= 1E-30, got 0", e.Message);
        e = await Assert.ThrowsAsync<ArgumentException>(() => Pipeline().GetResponseAsync("x", Aligned(new TiltAlignment { Strategy = DecodingStrategy.Blockwise, TopK = -1, K = 0 })));
        Assert.StartsWith("TiltAlignment.K must be between 1 and 256, got 0", e.Message);
    }

    [Theory]
    [InlineData(DecodingStrategy.Blockwise)]
    [InlineData(DecodingStrategy.Tokenwise)]
    public async Task Streaming_controlled_decoding_yields_text_then_a_final_update_with_the_result(DecodingStrategy strategy)
    {
        var alignment = new TiltAlignment { Strategy = strategy, K = 4, Block = 4, TopK = 4, Reward = "lexicon:positive" };
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in Pipeline().GetStreamingResponseAsync("Lily and Tom", Aligned(alignment, maxTokens: 16)))
        {
            updates.Add(u);
        }

        Assert.True(updates.Count(u => u.Text.Length > 0) >= 2, "text arrives in pieces");
        var last = updates[^1];
        Assert.NotNull(last.FinishReason);
        Assert.IsType<TiltAlignmentResult>(last.AdditionalProperties![TiltAlignment.PropertyName]);
        Assert.Single(last.Contents.OfType<UsageContent>());
        var sample = Assert.IsType<AlignedSample>(last.RawRepresentation);
        Assert.Equal(sample.Text, string.Concat(updates.Select(u => u.Text)));
    }

    [Fact]
    public async Task Chat_options_map_to_the_request_stop_sequences_and_max_tokens_included()
    {
        var client = Pipeline();
        var free = await client.GetResponseAsync("Once upon a time", new ChatOptions { MaxOutputTokens = 40, Seed = 3, Temperature = 0f });
        var sample = Assert.IsType<AlignedSample>(free.RawRepresentation);
        string word = free.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(2).First();

        var stopped = await client.GetResponseAsync("Once upon a time",
            new ChatOptions { MaxOutputTokens = 40, Seed = 3, Temperature = 0f, StopSequences = [word] });
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        Assert.DoesNotContain(word, stopped.Text);
        Assert.StartsWith(stopped.Text, free.Text);

        var shortOne = await client.GetResponseAsync("Once upon a time", new ChatOptions { MaxOutputTokens = 3, Seed = 3, Temperature = 0f });
        Assert.Equal(3, shortOne.Usage!.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, shortOne.FinishReason);
        Assert.StartsWith(shortOne.Text, sample.Text);
    }

    [Fact]
    public async Task Cancelling_mid_stream_stops_the_request_in_the_engine()
    {
        var engine = fixture.Host.Services.GetRequiredService<ITiltEngines>()["stories"];
        using var cts = new CancellationTokenSource();
        int pieces = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var u in Pipeline().GetStreamingResponseAsync("Once upon a time",
                new ChatOptions { MaxOutputTokens = 400, Seed = 5 }, cts.Token))
            {
                if (u.Text.Length > 0 && ++pieces == 2) cts.Cancel();
            }
        });
        Assert.Equal(2, pieces);
        var clock = Stopwatch.StartNew();
        while (engine.Status!.RunningRequests > 0 && clock.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        Assert.Equal(0, engine.Status!.RunningRequests);
    }

    [Fact]
    public async Task The_OpenTelemetry_middleware_records_a_gen_ai_activity_with_tilt_usage()
    {
        var activities = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (activities) activities.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);

        var response = await Pipeline().GetResponseAsync("One day", new ChatOptions { MaxOutputTokens = 8, Seed = 2, ModelId = "stories" });
        Activity activity;
        lock (activities) activity = Assert.Single(activities);
        Assert.Equal("tilt", activity.GetTagItem("gen_ai.provider.name"));
        Assert.Equal("stories", activity.GetTagItem("gen_ai.response.model"));
        Assert.Equal(response.Usage!.OutputTokenCount, Convert.ToInt64(activity.GetTagItem("gen_ai.usage.output_tokens")));
    }

    [Fact]
    public void AddTilt_registers_a_client_per_model_keyed_by_name_and_an_unkeyed_default()
    {
        var services = fixture.Host.Services;
        var keyed = services.GetRequiredKeyedService<IChatClient>("stories");
        Assert.Equal("stories", keyed.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.Same(keyed, services.GetRequiredKeyedService<IChatClient>("stories"));
        Assert.Equal("stories", services.GetRequiredService<IChatClient>().GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.Contains("configured: stories", Assert.Throws<KeyNotFoundException>(() => services.GetRequiredKeyedService<IChatClient>("other")).Message);
    }

    [Fact]
    public async Task A_wrong_alignment_value_is_an_argument_error_naming_the_property()
    {
        var options = new ChatOptions { AdditionalProperties = new() { [TiltAlignment.PropertyName] = "bon" } };
        var e = await Assert.ThrowsAsync<ArgumentException>(() => fixture.Host.Services.GetRequiredService<IChatClient>().GetResponseAsync("x", options));
        Assert.Contains("AdditionalProperties[\"alignment\"] must be a TiltAlignment", e.Message);
    }
}
