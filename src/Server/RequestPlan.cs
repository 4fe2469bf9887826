using System.Security.Cryptography;
using System.Text.Json;
using Tilt.Engine.Decoding;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Server;

/// <summary>A validated generation request: what to send to the engine and how to shape the answer.</summary>
internal sealed record RequestPlan(
    string Prompt,
    int PromptTokens,
    DecodingRequest Request,
    int Choices,
    IReadOnlyList<string> Stops,
    bool Stream,
    bool IncludeUsage,
    bool Logprobs,
    int TopLogprobs,
    string Strategy,
    string? RewardName,
    bool Echo)
{
    /// <summary>echo with max_tokens 0: score the prompt, generate nothing.</summary>
    public bool ScoreOnly { get; init; }
}

/// <summary>
/// Turns an OpenAI-shaped request into a <see cref="DecodingRequest"/>. Every refusal is a 400 that names the field
/// (and the limit, for bounds); the strategies themselves live in the engine.
/// </summary>
internal static class RequestPlanner
{
    public static RequestPlan Plan(GenerationRequestBase r, string prompt, int? maxTokensField, string maxTokensName, int defaultMaxTokens,
        bool logprobs, int topLogprobs, bool echo, ServedModel served, ServerOptions options)
    {
        var limits = options.Limits;
        var catalog = served.Catalog;
        // The engine's own settings: its context fixes the KV cache type and threads every request on it runs with, so
        // requests do not carry them.
        var engine = served.Engine.Settings;
        if (prompt.Length > limits.MaxPromptChars)
            throw ApiException.BadField("prompt", $"the prompt is {prompt.Length} characters; the limit is {limits.MaxPromptChars}");

        int maxTokens = maxTokensField ?? defaultMaxTokens;
        Bound(maxTokensName, maxTokens, 1, limits.MaxTokens);
        int n = r.N ?? 1;
        Bound("n", n, 1, limits.MaxChoices);
        double temperature = r.Temperature ?? 1.0;
        if (!(temperature >= 0 && temperature <= 2))
            throw ApiException.BadField("temperature", $"temperature must be between 0 and 2 (0 = greedy), got {temperature}");
        double topP = r.TopP ?? 1.0;
        if (!(topP > 0 && topP <= 1))
            throw ApiException.BadField("top_p", $"top_p must be in (0, 1], got {topP}");
        var stops = Stops(r.Stop, limits);
        ulong seed = r.Seed is { } s ? unchecked((ulong)s) : BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

        if (r.Prefill is { Length: > 0 } forced && forced.Length > limits.MaxPromptChars)
            throw ApiException.BadField("prefill", $"the prefill is {forced.Length} characters; the limit is {limits.MaxPromptChars}");
        int[] promptIds = served.Model.Tokenize(prompt); // once: the engine takes these (DecodingRequest.PromptTokens)
        int promptTokens = promptIds.Length + (string.IsNullOrEmpty(r.Prefill) ? 0 : served.Model.Tokenize(r.Prefill, addBos: false).Length);
        int room = Math.Min(served.Model.Info.TrainedContextSize, engine.MaxSequenceLength - 1) - promptTokens;
        if (maxTokens > room)
            throw ApiException.BadField(maxTokensName,
                $"the prompt is {promptTokens} tokens, so {maxTokensName} can be at most {Math.Max(0, room)} (context {served.Model.Info.TrainedContextSize} tokens, " +
                $"{engine.MaxSequenceLength} per sequence); got {maxTokens}");

        var sampling = new SamplingParameters((float)temperature, 0, (float)topP);
        DecodingOptions decoding;
        IReward? reward = null;
        IValueFunction? value = null;
        string strategy = "generate";
        string? rewardName = null;
        if (r.Alignment is not { } a)
        {
            decoding = new GenerationOptions { Samples = n };
        }
        else
        {
            var entry = a.Strategy is null
                ? throw ApiException.BadField("alignment.strategy", $"alignment.strategy is required: {StrategyCatalog.Names(StrategyCatalog.Entries)}")
                : StrategyCatalog.Find(a.Strategy)
                  ?? throw new ApiException(400, $"unknown alignment.strategy '{a.Strategy}' (known: {string.Join(", ", StrategyCatalog.Entries.Select(e => e.Name))})",
                      "alignment.strategy", "unknown_strategy");
            strategy = entry.Name;
            rewardName = a.Reward ?? RewardCatalog.DefaultReward;
            reward = catalog.Reward(rewardName);
            if (a.ValueHead is { } head)
            {
                if (!entry.ReadsValue) throw ApiException.BadField("alignment.value_head", "alignment.value_head steers tokenwise and blockwise CD; best-of-n ranks by the reward");
                value = catalog.ValueHead(head);
            }
            decoding = Aligned(a, entry, n, maxTokens, Math.Min(limits.MaxCandidates, engine.MaxSequences), limits.MaxBlock);
        }

        decoding = decoding with
        {
            MaxTokens = maxTokens,
            Seed = seed,
            Sampling = sampling,
            Stop = StopFor(stops, r, served),
            Logprobs = logprobs,
            TopLogprobs = topLogprobs,
        };
        // The request's compute budget: past it, the output in progress is returned (rewards included: scoring checks it too).
        if (decoding is AlignOptions aligned) decoding = aligned with { Deadline = limits.MaxAlignmentTime };
        var request = new DecodingRequest
        {
            Prompt = prompt, PromptTokens = promptIds, Options = decoding, Reward = reward, Value = value, ForcedPrefix = r.Prefill,
        };
        return new RequestPlan(prompt, promptTokens, request, n, stops, r.Stream ?? false, r.StreamOptions?.IncludeUsage ?? false,
            logprobs, topLogprobs, strategy, rewardName, echo);
    }

    /// <summary>
    /// The alignment object through the strategy catalogue, under the server's limits. Every field the request sets is
    /// checked (a JSON object names only what its sender meant), whether or not the strategy reads it.
    /// </summary>
    private static AlignOptions Aligned(AlignmentRequest a, StrategyEntry entry, int choices, int maxTokens, int maxCandidates, int maxBlock)
    {
        try
        {
            var spec = new StrategySpec
            {
                Strategy = entry.Strategy, N = a.N, K = a.K, Block = a.Block, Beams = a.Beams, TopK = a.TopK, Beta = a.Beta, Alpha = a.Alpha, Every = a.Every, DecideAt = a.DecideAt, Lambda = a.Lambda,
                Selection = a.Selection is { } selection ? StrategyCatalog.ParseSelection(selection) : null,
                ReturnCandidates = a.ReturnCandidates, Samples = choices,
            };
            return spec.Build(new StrategyLimits
            {
                MaxCandidates = maxCandidates, MinTopK = 1, MaxTopK = maxCandidates, MaxBlock = maxBlock, MaxTokens = maxTokens, CheckUnread = true,
            });
        }
        catch (StrategyFieldException e)
        {
            string field = $"alignment.{e.Field}";
            throw new ApiException(400, e.MessageFor(field), field, e.OutOfRange ? "out_of_range" : "invalid_value");
        }
    }

    private static StopSequences? StopFor(IReadOnlyList<string> stops, GenerationRequestBase r, ServedModel served)
    {
        var ids = r.StopTokenIds ?? [];
        if (ids.Count > StopSequences.MaxTokenIds)
            throw new ApiException(400, $"stop_token_ids holds {ids.Count} ids; the limit is {StopSequences.MaxTokenIds}", "stop_token_ids", "out_of_range");
        int vocab = served.Model.Info.VocabularySize;
        foreach (int id in ids)
            if (id < 0 || id >= vocab) throw new ApiException(400, $"stop_token_ids: {id} is not a token id (0..{vocab - 1})", "stop_token_ids", "out_of_range");
        if (stops.Count == 0 && ids.Count == 0) return null;
        return new StopSequences { Strings = stops, TokenIds = ids, IncludeStop = r.IncludeStopStrInOutput ?? false };
    }

    private static int Bound(string field, int value, int min, int max) =>
        value >= min && value <= max
            ? value
            : throw new ApiException(400, $"{field} must be between {min} and {max}, got {value}", field, "out_of_range");

    private static IReadOnlyList<string> Stops(JsonElement? stop, RequestLimits limits)
    {
        if (stop is not { } e || e.ValueKind == JsonValueKind.Null) return [];
        var list = new List<string>();
        if (e.ValueKind == JsonValueKind.String) list.Add(e.GetString()!);
        else if (e.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in e.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String) throw ApiException.BadField("stop", "stop must be a string or an array of strings");
                list.Add(item.GetString()!);
            }
        }
        else throw ApiException.BadField("stop", "stop must be a string or an array of strings");
        if (list.Count > limits.MaxStops) throw new ApiException(400, $"stop holds {list.Count} sequences; the limit is {limits.MaxStops}", "stop", "out_of_range");
        foreach (var s in list)
            if (System.Text.Encoding.UTF8.GetByteCount(s) is var bytes && (bytes == 0 || bytes > limits.MaxStopBytes))
                throw new ApiException(400, $"each stop sequence must be 1 to {limits.MaxStopBytes} UTF-8 bytes, got {bytes}", "stop", "out_of_range");
        return list;
    }
}
