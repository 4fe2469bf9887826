using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tilt.Server;

// OpenAI's request and response shapes (https://platform.openai.com/docs/api-reference), snake_case on the wire via
// ServerJson.Options. Fields the server does not use are ignored, as OpenAI-compatible servers do; the alignment
// object is ours and refuses unknown fields, so a misspelt knob is an error rather than a silent default.

/// <summary>POST /v1/completions.</summary>
public sealed class CompletionRequest : GenerationRequestBase
{
    /// <summary>A string, or an array holding one string.</summary>
    public JsonElement? Prompt { get; init; }

    /// <summary>Prepend the prompt to the returned text.</summary>
    public bool? Echo { get; init; }

    /// <summary>Completions: a number (top alternatives per token, 0..20) or null (no log-probabilities).</summary>
    public int? Logprobs { get; init; }
}

/// <summary>POST /v1/chat/completions.</summary>
public sealed class ChatRequest : GenerationRequestBase
{
    public List<ChatMessageDto>? Messages { get; init; }

    public int? MaxCompletionTokens { get; init; }

    public bool? Logprobs { get; init; }

    public int? TopLogprobs { get; init; }
}

/// <summary>One chat message: content is a string or an array of {"type": "text", "text": ...} parts.</summary>
public sealed class ChatMessageDto
{
    public string? Role { get; init; }

    public JsonElement? Content { get; init; }
}

/// <summary>Fields completions and chat share.</summary>
public abstract class GenerationRequestBase
{
    public string? Model { get; init; }

    public int? MaxTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? N { get; init; }

    public long? Seed { get; init; }

    /// <summary>A string or an array of strings.</summary>
    public JsonElement? Stop { get; init; }

    /// <summary>vLLM's extension: token ids that end a sequence like EOS.</summary>
    public List<int>? StopTokenIds { get; init; }

    /// <summary>vLLM's extension: keep the stop string at the end of the text (default false, OpenAI's behaviour).</summary>
    public bool? IncludeStopStrInOutput { get; init; }

    public bool? Stream { get; init; }

    public StreamOptionsDto? StreamOptions { get; init; }

    public AlignmentRequest? Alignment { get; init; }

    /// <summary>Extension: text the response is forced to start with (not sampled; excluded from KL; seen by the reward).</summary>
    public string? Prefill { get; init; }
}

public sealed class StreamOptionsDto
{
    public bool? IncludeUsage { get; init; }
}

/// <summary>The <c>alignment</c> extension: which strategy, towards which named reward, with which knobs.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class AlignmentRequest
{
    /// <summary>bon | soft-bon | tokenwise | blockwise | beam | rejection.</summary>
    public string? Strategy { get; init; }

    /// <summary>A reward name (built-in or from --rewards) or a spec that reads no files.</summary>
    public string? Reward { get; init; }

    /// <summary>A value head name from --rewards (or a path inside --allow-files).</summary>
    public string? ValueHead { get; init; }

    /// <summary>Best-of-n candidates.</summary>
    public int? N { get; init; }

    /// <summary>Blockwise candidate blocks.</summary>
    public int? K { get; init; }

    /// <summary>Blockwise and beam search: tokens per block.</summary>
    public int? Block { get; init; }

    /// <summary>Beam search: beams kept after every step (1..k).</summary>
    public int? Beams { get; init; }

    /// <summary>Tilt strength (token-wise; blockwise with selection "sample").</summary>
    public double? Beta { get; init; }

    /// <summary>Token-wise candidate tokens per step.</summary>
    public int? TopK { get; init; }

    /// <summary>Blockwise: argmax | sample.</summary>
    public string? Selection { get; init; }

    /// <summary>Best-of-n and rejection: return every candidate with its reward.</summary>
    public bool? ReturnCandidates { get; init; }

    /// <summary>Rejection: fraction of the unfinished candidates stopped at each decision, in [0, 1).</summary>
    public double? Alpha { get; init; }

    /// <summary>Soft best-of-n: the selection temperature lambda (winner ∝ exp(r/lambda)). Default 1.</summary>
    public double? Lambda { get; init; }

    /// <summary>Rejection: generated tokens between decisions.</summary>
    public int? Every { get; init; }

    /// <summary>
    /// Rejection's budget mode: one decision only, at this many generated tokens (a number: the server never reads a
    /// calibration file; <c>tilt rejection calibrate</c> finds one).
    /// </summary>
    public int? DecideAt { get; init; }
}

// ---- responses ----

public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);

public sealed record CompletionResponse(string Id, string Object, long Created, string Model, IReadOnlyList<CompletionChoice> Choices, Usage? Usage);

public sealed record CompletionChoice(
    string Text,
    int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason,
    AlignmentReport? Alignment);

public sealed record ChatResponse(string Id, string Object, long Created, string Model, IReadOnlyList<ChatChoice> Choices, Usage? Usage);

public sealed record ChatChoice(
    int Index,
    AssistantMessage? Message,
    AssistantMessage? Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason,
    AlignmentReport? Alignment);

public sealed record AssistantMessage(string? Role, string? Content);

/// <summary>What each choice reports about its alignment: reward, KL with its method and band, cost.</summary>
public sealed record AlignmentReport(
    string Strategy,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? RewardName,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? Reward,
    double Logprob,
    KlDto Kl,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] KlDto? KlBound,
    long TokensEvaluated,
    TimingsDto Timings,
    double? WinRate,
    IReadOnlyList<CandidateDto>? Candidates);

public sealed record KlDto([property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? Value, string Method, string? Band);

public sealed record TimingsDto(double PrefillMs, double FirstTextMs, double TotalMs, int DecodeCalls, double PerStepMs);

/// <param name="Rejected">Early rejection: true for a candidate stopped at a decision (its reward is then its value when stopped).</param>
public sealed record CandidateDto(string Text, double? Reward, double Logprob, bool Selected, bool? Rejected = null);

/// <summary>
/// Completions logprobs (OpenAI's legacy shape): per token its text, log p (null for a token that was not sampled: a
/// forced prefix, or the first prompt token with echo), the top alternatives as {text: log p} (null when none were asked
/// for) and the text offset; <c>sequence_logprob</c> = log p(y|x) on whole choices.
/// </summary>
public sealed record LogprobsDto(
    IReadOnlyList<string> Tokens,
    IReadOnlyList<double?> TokenLogprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] IReadOnlyList<Dictionary<string, double>?>? TopLogprobs,
    IReadOnlyList<int> TextOffset,
    double? SequenceLogprob = null);

/// <summary>Chat logprobs: one entry per token, and <c>sequence_logprob</c> = log p(y|x) on whole choices.</summary>
public sealed record ChatLogprobsDto(
    IReadOnlyList<ChatTokenLogprob> Content,
    double? SequenceLogprob = null);

public sealed record ChatTokenLogprob(
    string Token,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? Logprob,
    IReadOnlyList<int> Bytes,
    IReadOnlyList<ChatTopLogprob> TopLogprobs);

public sealed record ChatTopLogprob(string Token, double Logprob, IReadOnlyList<int> Bytes);

public sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

/// <summary>A model in <c>/v1/models</c>; <c>aliases</c> (ours) lists the other names requests may use for it.</summary>
public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, string Description, IReadOnlyList<string>? Aliases = null);

/// <summary>The server's JSON settings: snake_case, nulls left out unless a field says otherwise, NaN refused on input.</summary>
internal static class ServerJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.Strict,
        MaxDepth = 32,
        // JSON for API clients, never embedded in HTML: quotes and apostrophes in messages stay readable.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
