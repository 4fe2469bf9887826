using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Tilt.Engine.Models;
using Tilt.Engine.Requests;
using Tilt.Engine.Rewards;
using Tilt.Engine.Rewards.Specs;
using Tilt.Kernels;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using TiltChatMessage = Tilt.Engine.Models.ChatMessage;

namespace Tilt.Hosting;

/// <summary>
/// <see cref="IChatClient"/> over one Tilt model (Microsoft.Extensions.AI): messages go through the model's chat template
/// (<see cref="ChatPrompt.Format"/>), <see cref="ChatOptions"/> map to the request (MaxOutputTokens, Temperature, TopP,
/// TopK, Seed, StopSequences), and a <see cref="TiltAlignment"/> in <c>AdditionalProperties["alignment"]</c> turns the
/// request into an aligned one. The response carries a <see cref="TiltAlignmentResult"/> in its
/// <c>AdditionalProperties["alignment"]</c>, the engine's <see cref="AlignedSample"/> as <c>RawRepresentation</c>, and
/// <see cref="UsageDetails"/>. <c>AddTilt</c> registers one per model (keyed by the model's name; the unkeyed one is the
/// default model). The client is bound to its model: <c>ChatOptions.ModelId</c> is not read, and responses name the model.
/// Thread-safe; disposing it leaves the engine to the host.
/// </summary>
public sealed class TiltChatClient : IChatClient
{
    private readonly TiltEngine _engine;

    /// <summary>A client for <paramref name="engine"/> (one of <see cref="ITiltEngines"/>).</summary>
    public TiltChatClient(TiltEngine engine)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _engine = engine;
        Metadata = new ChatClientMetadata("tilt", defaultModelId: engine.Name);
    }

    /// <summary>Provider "tilt" and the model's configured name.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <inheritdoc />
    /// <remarks>Built on <see cref="GetStreamingResponseAsync"/>: the same request, its updates combined.</remarks>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AiChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            updates.Add(update);
        }

        var response = updates.ToChatResponse();
        // ToChatResponse joins the text; the engine's result (raw sample, alignment, usage) is the last update's.
        var final = updates.LastOrDefault(u => u.RawRepresentation is AlignedSample);
        response.RawRepresentation = final?.RawRepresentation;
        response.AdditionalProperties = final?.AdditionalProperties;
        // The engine's own counts (tokens evaluated) are kept whole rather than merged.
        if (updates.SelectMany(u => u.Contents).OfType<UsageContent>().LastOrDefault() is { } usage) response.Usage = usage.Details;
        return response;
    }

    /// <inheritdoc />
    /// <remarks>
    /// One update per accepted piece of text (a token, a block, or best-of-n's winner at once), then a last update with the
    /// finish reason, usage and alignment result. Leaving the loop early (or cancelling) cancels the request in the engine.
    /// </remarks>
    /// <exception cref="ArgumentException">A bad option (the message names it), or an alignment value of the wrong type.</exception>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AiChatMessage> messages,
        ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var alignment = AlignmentOf(options);
        var request = new DecodingRequest
        {
            Prompt = ChatPrompt.Format(_engine.Model, [.. messages.Select(m => new TiltChatMessage(m.Role.Value, m.Text))]),
            Options = DecodingOptionsOf(options, alignment),
            Reward = RewardOf(alignment),
        };

        string responseId = $"tilt-{Guid.NewGuid():N}";
        string messageId = responseId;
        var created = DateTimeOffset.UtcNow;
        await foreach (var e in _engine.StreamAsync(request, cancellationToken).ConfigureAwait(false))
        {
            cancellationToken.ThrowIfCancellationRequested();
            switch (e)
            {
                case TextAccepted text when text.TextDelta.Length > 0:
                    yield return new ChatResponseUpdate(ChatRole.Assistant, text.TextDelta)
                    {
                        ResponseId = responseId, MessageId = messageId, ModelId = _engine.Name, CreatedAt = created,
                    };
                    break;
                case SampleCompleted done:
                    yield return Final(done.Result, request.Strategy, responseId, messageId, created);
                    break;
            }
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        if (serviceType == typeof(TiltEngine)) return _engine;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Nothing to release: the engine belongs to the host.</summary>
    public void Dispose()
    {
    }

    private ChatResponseUpdate Final(AlignedSample sample, DecodingStrategy strategy, string responseId, string messageId, DateTimeOffset created)
    {
        int output = sample.Tokens.Count;
        var usage = new UsageDetails
        {
            InputTokenCount = sample.PromptTokens,
            OutputTokenCount = output,
            TotalTokenCount = sample.PromptTokens + output,
            AdditionalCounts = new() { ["tilt.tokens_evaluated"] = sample.TokensEvaluated },
        };
        var result = new TiltAlignmentResult(strategy, sample.Reward, sample.LogProb, sample.Kl.Value, Snake(sample.Kl.Method),
            Snake(sample.Kl.Band), sample.KlBound?.Value, sample.TokensEvaluated, sample.Candidates);
        return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
        {
            ResponseId = responseId,
            MessageId = messageId,
            ModelId = _engine.Name,
            CreatedAt = created,
            FinishReason = sample.Finish is AlignFinish.Length or AlignFinish.Deadline ? ChatFinishReason.Length : ChatFinishReason.Stop,
            AdditionalProperties = new() { [TiltAlignment.PropertyName] = result },
            RawRepresentation = sample,
        };
    }

    private static TiltAlignment? AlignmentOf(ChatOptions? options)
    {
        if (options?.AdditionalProperties is not { } properties || !properties.TryGetValue(TiltAlignment.PropertyName, out object? value) || value is null)
        {
            return null;
        }

        return value as TiltAlignment ?? throw new ArgumentException(
            $"ChatOptions.AdditionalProperties[\"{TiltAlignment.PropertyName}\"] must be a {nameof(TiltAlignment)}, got {value.GetType().Name}", nameof(options));
    }

    private static DecodingOptions DecodingOptionsOf(ChatOptions? options, TiltAlignment? alignment)
    {
        var sampling = new SamplingParameters(options?.Temperature ?? 1f, options?.TopK ?? 0, options?.TopP ?? 1f);
        var plain = new GenerationOptions();
        int maxTokens = options?.MaxOutputTokens ?? plain.MaxTokens;
        DecodingOptions decoding = alignment is null || alignment.Strategy == DecodingStrategy.Generate ? plain : Aligned(alignment, maxTokens);
        return decoding with
        {
            MaxTokens = maxTokens,
            Seed = options?.Seed is { } seed ? unchecked((ulong)seed) : (ulong)Random.Shared.NextInt64(),
            Sampling = sampling,
            Stop = options?.StopSequences is { Count: > 0 } stop ? StopSequences.FromStrings(stop) : null,
        };
    }

    /// <summary>The alignment through the strategy catalogue; a bad field is named as its TiltAlignment property.</summary>
    private static AlignOptions Aligned(TiltAlignment alignment, int maxTokens)
    {
        if (alignment.Strategy is DecodingStrategy.Score)
            throw new ArgumentException($"alignment strategy {alignment.Strategy} is not one a chat can use ({string.Join(", ", StrategyCatalog.Entries.Select(e => e.Strategy))})", "options");
        if (alignment.Samples is not (null or 1))
            throw new ArgumentException($"{nameof(TiltAlignment)}.{nameof(TiltAlignment.Samples)}: a chat response is one output, got {alignment.Samples}", "options");
        try
        {
            return alignment.Build(new StrategyLimits { MaxTokens = maxTokens });
        }
        catch (StrategyFieldException e)
        {
            throw new ArgumentException(e.MessageFor($"{nameof(TiltAlignment)}.{TiltAlignment.PropertyOf(e.Field)}"), "options", e);
        }
    }

    private IReward? RewardOf(TiltAlignment? alignment)
    {
        if (alignment is null || alignment.Strategy == DecodingStrategy.Generate) return null;
        if (alignment.RewardFunction is { } reward) return reward;
        var context = new RewardSpecContext { HeadRewardFactory = path => Tilt.Engine.Heads.HeadReward.Load(path, _engine.Model) };
        return RewardSpec.Parse(alignment.Reward ?? TiltAlignment.DefaultReward, context);
    }

    private static string Snake<T>(T value) where T : struct, Enum => JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());
}
