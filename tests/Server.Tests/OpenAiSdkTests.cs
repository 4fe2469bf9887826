using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using OpenAI;
using OpenAI.Chat;

namespace Tilt.Server.Tests;

/// <summary>
/// One server for the SDK tests (loading is the slow part): stories260K, and the same file as a second model, so that a
/// name the server does not serve is a 404 (a one-model server answers any name).
/// </summary>
public sealed class SdkServerFixture : IAsyncLifetime
{
    internal Host Host { get; private set; } = null!;

    public OpenAIClientOptions Options => new() { Endpoint = new Uri(Host.Server.Addresses.Single() + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) };

    public async Task InitializeAsync() => Host = await Host.StartAsync(models: o =>
    {
        Host.Configure(o.AddModel("stories260K", Tilt.Tests.TestPaths.DefaultModel));
        Host.Configure(o.AddModel("stories260K-copy", Tilt.Tests.TestPaths.DefaultModel));
    });

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>
/// The official OpenAI .NET SDK (package OpenAI) against an in-process `tilt serve` on loopback: chat, legacy completions,
/// streaming, completions through the SDK's pipeline, the `alignment` extension field through the SDK's JSON patch, and
/// errors as the SDK surfaces them.
/// </summary>
public sealed class OpenAiSdkTests(SdkServerFixture fixture) : IClassFixture<SdkServerFixture>
{
    private const string Model = "stories260K";
    private static readonly ApiKeyCredential Key = new("unused");

    private ChatClient Chat(string model = Model) => new(model, Key, fixture.Options);

    private static JsonElement Json(ClientResult result) => JsonDocument.Parse(result.GetRawResponse().Content.ToString()).RootElement.Clone();

    [Fact]
    public async Task Chat_completion_returns_text_usage_and_the_served_model()
    {
        ChatCompletion completion = await Chat().CompleteChatAsync([new UserChatMessage("Once upon a time")],
            new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0f });
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.False(string.IsNullOrEmpty(completion.Content[0].Text));
        Assert.Equal(Model, completion.Model);
        Assert.StartsWith("chatcmpl-", completion.Id);
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 16);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
        Assert.Contains(completion.FinishReason, new[] { ChatFinishReason.Stop, ChatFinishReason.Length });
    }

    [Fact]
    public async Task The_alignment_field_travels_in_the_sdk_patch_and_comes_back_per_choice()
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 16 };
#pragma warning disable SCME0001 // JsonPatch: the SDK's documented way to send fields it does not model
        options.Patch.Set("$.alignment"u8, BinaryData.FromString("""{"strategy": "bon", "n": 4, "reward": "sentiment", "return_candidates": true}"""));
#pragma warning restore SCME0001
        ClientResult<ChatCompletion> result = await Chat().CompleteChatAsync([new UserChatMessage("Once upon a time")], options);
        var alignment = Json(result).GetProperty("choices")[0].GetProperty("alignment");
        Assert.Equal("bon", alignment.GetProperty("strategy").GetString());
        Assert.Equal("best_of_n_estimate", alignment.GetProperty("kl").GetProperty("method").GetString());
        Assert.Equal(4, alignment.GetProperty("candidates").GetArrayLength());
        var selected = alignment.GetProperty("candidates").EnumerateArray().Single(c => c.TryGetProperty("selected", out var s) && s.GetBoolean());
        Assert.Equal(result.Value.Content[0].Text, selected.GetProperty("text").GetString());
        Assert.Equal(alignment.GetProperty("candidates").EnumerateArray().Max(c => c.GetProperty("reward").GetDouble()), alignment.GetProperty("reward").GetDouble());
    }

    [Fact]
    public async Task Streaming_chat_joins_to_the_non_streamed_text_and_reports_usage()
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0f };
        ChatCompletion whole = await Chat().CompleteChatAsync([new UserChatMessage("Lily and Tom")], options);
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        int updates = 0;
        await foreach (StreamingChatCompletionUpdate update in Chat().CompleteChatStreamingAsync([new UserChatMessage("Lily and Tom")], options))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
            Assert.Equal(Model, update.Model);
        }
        Assert.True(updates > 2, $"{updates} updates");
        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.Equal(whole.FinishReason, finish);
    }

    [Fact]
    public async Task Completions_through_the_sdk_pipeline()
    {
        // The SDK models no legacy completions client (its LegacyCompletionClient is internal): send the request through
        // the SDK's own pipeline (its authentication, retries and error mapping), as protocol-level calls do.
        ClientPipeline pipeline = Chat().Pipeline;
        using PipelineMessage message = pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(fixture.Options.Endpoint + "/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromString(
            """{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 12, "seed": 4, "alignment": {"strategy": "blockwise", "k": 4, "block": 4}}"""));
        message.ResponseClassifier = PipelineMessageClassifier.Create([200]);
        await pipeline.SendAsync(message);
        Assert.False(message.Response!.IsError, message.Response.Content.ToString());
        var body = JsonDocument.Parse(message.Response.Content.ToString()).RootElement;
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.False(string.IsNullOrEmpty(choice.GetProperty("text").GetString()));
        Assert.Equal("blockwise", choice.GetProperty("alignment").GetProperty("strategy").GetString());
        Assert.True(body.GetProperty("usage").GetProperty("completion_tokens").GetInt32() > 0);
    }

    [Fact]
    public async Task Errors_surface_as_the_sdk_exception_with_the_status_and_message()
    {
        var unknown = await Assert.ThrowsAsync<ClientResultException>(() => Chat("no-such-model").CompleteChatAsync([new UserChatMessage("x")]));
        Assert.Equal(404, unknown.Status);
        Assert.Contains("the model 'no-such-model' does not exist", unknown.Message);

        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8 };
#pragma warning disable SCME0001 // JsonPatch: the SDK's documented way to send fields it does not model
        options.Patch.Set("$.alignment"u8, BinaryData.FromString("""{"strategy": "bon", "nn": 4}"""));
#pragma warning restore SCME0001
        var bad = await Assert.ThrowsAsync<ClientResultException>(() => Chat().CompleteChatAsync([new UserChatMessage("x")], options));
        Assert.Equal(400, bad.Status);
        Assert.Contains("alignment", bad.Message);
    }
}
