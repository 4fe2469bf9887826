using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;
using Tilt.Engine;
using Tilt.Engine.Decoding;
using Tilt.Engine.Statistics;
using Tilt.Engine.Text;
using Tilt.Engine.Models;
using Tilt.Engine.Requests;
using Tilt.Kernels;

namespace Tilt.Server;

/// <summary>The routes, the middleware (outcome metrics, API key) and the generation handlers.</summary>
internal static class Endpoints
{
    private const string OutcomeKey = "tilt.outcome";

    public static void Map(WebApplication app, TiltServer server)
    {
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Tilt.Server");
        byte[]? keyHash = server.Options.ApiKey is { } key ? SHA256.HashData(Encoding.UTF8.GetBytes(key)) : null;

        // Outcome metrics around everything, so refusals (401, 404, 413) are counted too.
        app.Use(async (ctx, next) =>
        {
            try
            {
                await next(ctx);
            }
            finally
            {
                string route = (ctx.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
                string outcome = ctx.Items[OutcomeKey] as string ?? Outcome(ctx.Response.StatusCode);
                server.Metrics.Requests.WithLabels(route, outcome).Inc();
            }
        });

        // Every route but the health probes needs the key when one is set: balancers and kubelets probe without one.
        app.Use(async (ctx, next) =>
        {
            if (keyHash is not null && !IsProbe(ctx.Request.Path) && !ApiKeyCheck.Matches(ctx.Request.Headers.Authorization, keyHash))
            {
                ctx.Response.Headers.WWWAuthenticate = "Bearer";
                await Error(new ApiException(401, "missing or wrong API key: send Authorization: Bearer KEY", null, "invalid_api_key")).ExecuteAsync(ctx);
                return;
            }
            await next(ctx);
        });

        // Readiness (/health and /health/ready): 200 only when a new request would be admitted, so a balancer's health
        // check stops sending here while the model loads, once draining has begun, and while the queue is full.
        app.MapGet("/health", () => Probes.Readiness(server));
        app.MapGet("/health/ready", () => Probes.Readiness(server));
        app.MapGet("/health/live", () => Probes.Liveness(server));

        app.MapGet("/metrics", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = PrometheusConstants.ExporterContentTypeValue.ToString();
            await server.Metrics.Registry.CollectAndExportAsTextAsync(ctx.Response.Body, ctx.RequestAborted);
        });

        app.MapGet("/v1/models", Handler(ctx => Guard(ctx, log, () =>
        {
            var models = Ready(server);
            return Task.FromResult<IResult>(TypedResults.Json(new ModelList("list", [.. models.All.Select(m => m.Card())]), ServerJson.Options));
        })));

        // A model's card by its id or an alias (the card names the id); unlike generation, an unknown id is a 404 even
        // with one model: the caller asks whether this model exists.
        app.MapGet("/v1/models/{id}", (HttpContext ctx, string id) => Guard(ctx, log, () =>
        {
            var models = Ready(server);
            var m = models.Find(id) ?? throw new ApiException(404,
                $"the model '{id}' does not exist; this server serves {string.Join(", ", models.All.Select(x => $"'{x.Id}'"))}", "model", "model_not_found");
            return Task.FromResult<IResult>(TypedResults.Json(m.Card(), ServerJson.Options));
        }));

        app.MapPost("/v1/completions", Handler(ctx => Guard(ctx, log, async () =>
        {
            var models = Admit(server);
            var body = await ReadBody<CompletionRequest>(ctx, server.Options.Limits);
            var m = models.Route(body.Model);
            string prompt = Prompt(body.Prompt);
            if (body.Logprobs is < 0 or > TopLogProbs.MaxN)
                throw new ApiException(400, $"logprobs must be between 0 and {TopLogProbs.MaxN} (top alternatives per token), got {body.Logprobs}", "logprobs", "out_of_range");
            // echo with max_tokens 0 scores the prompt (what log-likelihood harnesses send) and generates nothing.
            bool scoreOnly = body.MaxTokens == 0 && body.Echo == true;
            if (body.MaxTokens == 0 && !scoreOnly)
                throw new ApiException(400, "max_tokens 0 generates nothing: with echo: true it scores the prompt (with logprobs: N, its tokens' log-probabilities)", "max_tokens", "out_of_range");
            if (scoreOnly && body.Alignment is not null)
                throw ApiException.BadField("alignment", "echo with max_tokens 0 only scores the prompt: alignment has nothing to steer");
            var plan = RequestPlanner.Plan(body, prompt, scoreOnly ? 1 : body.MaxTokens, "max_tokens", 16, body.Logprobs is not null, body.Logprobs ?? 0, body.Echo ?? false,
                m, server.Options) with { ScoreOnly = scoreOnly };
            return await Generate(ctx, server, m, plan, chat: false);
        })));

        app.MapPost("/v1/chat/completions", Handler(ctx => Guard(ctx, log, async () =>
        {
            var models = Admit(server);
            var body = await ReadBody<ChatRequest>(ctx, server.Options.Limits);
            var m = models.Route(body.Model);
            var messages = Messages(body.Messages, server.Options.Limits);
            if (body.TopLogprobs is < 0 or > TopLogProbs.MaxN)
                throw new ApiException(400, $"top_logprobs must be between 0 and {TopLogProbs.MaxN}, got {body.TopLogprobs}", "top_logprobs", "out_of_range");
            if (body.TopLogprobs is > 0 && body.Logprobs != true)
                throw ApiException.BadField("top_logprobs", "top_logprobs needs logprobs: true");
            string prompt;
            try
            {
                prompt = ChatPrompt.Format(m.Model.Info, messages);
            }
            catch (TiltException e)
            {
                throw ApiException.BadField("messages", e.Message);
            }
            var plan = RequestPlanner.Plan(body, prompt, body.MaxCompletionTokens ?? body.MaxTokens,
                body.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens", 128, body.Logprobs ?? false, body.TopLogprobs ?? 0, false,
                m, server.Options);
            return await Generate(ctx, server, m, plan, chat: true);
        })));

        app.MapFallback((HttpContext ctx) =>
            Error(new ApiException(404, $"no route {ctx.Request.Method} {ctx.Request.Path}", null, "unknown_route")));
    }

    /// <summary>A handler whose IResult is executed (a lambda over HttpContext alone would bind as a RequestDelegate and drop it).</summary>
    private static Delegate Handler(Func<HttpContext, Task<IResult>> handler) => handler;

    // ---- generation ----

    private static async Task<IResult> Generate(HttpContext ctx, TiltServer server, ServedModel m, RequestPlan plan, bool chat)
    {
        var clock = Stopwatch.StartNew();
        string id = (chat ? "chatcmpl-" : "cmpl-") + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string route = chat ? "/v1/chat/completions" : "/v1/completions";
        if (plan.ScoreOnly) return await ScoreOnly(ctx, server, m, plan, id, created, route, clock);
        // echo with logprobs: the prompt's own tokens are scored beside the generation (one more request on the engine).
        var promptScore = plan.Echo && plan.Logprobs ? m.Engine.ScoreAsync(plan.Prompt, "", plan.TopLogprobs, includePrompt: true, ctx.RequestAborted) : null;
        if (!plan.Stream)
        {
            IReadOnlyList<AlignedSample> samples;
            try
            {
                samples = await m.Engine.RunAsync(plan.Request, ctx.RequestAborted);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                server.OnFinished(new FinishedRequest(route, "cancelled", 0, DateTime.UtcNow));
                throw;
            }
            var outputs = samples.Select(s => Shape(m, plan, s)).ToList();
            if (promptScore is not null)
            {
                var echoed = LogprobShapes.Echo(m.Model, plan.Prompt, (await promptScore).PromptLogProbs!, plan.TopLogprobs);
                outputs = outputs.Select(o => o with { Logprobs = LogprobShapes.Concat(echoed, o.Logprobs) }).ToList();
            }
            foreach (var s in samples) server.Metrics.Record(m.Id, plan.Strategy, s);
            if (samples.Count > 0) server.Metrics.TimeToFirstText.WithLabels(m.Id).Observe(samples.Min(s => s.Timings.FirstAccepted.TotalSeconds));
            server.Metrics.RequestDuration.WithLabels(route).Observe(clock.Elapsed.TotalSeconds);
            var usage = Usage(plan, samples);
            server.OnFinished(new FinishedRequest(route, "ok", 0, DateTime.UtcNow));
            return chat
                ? TypedResults.Json(new ChatResponse(id, "chat.completion", created, m.Id,
                    outputs.Select((o, i) => new ChatChoice(i, new AssistantMessage("assistant", o.Text), null, o.ChatLogprobs, o.Finish, o.Alignment)).ToList(), usage), ServerJson.Options)
                : TypedResults.Json(new CompletionResponse(id, "text_completion", created, m.Id,
                    outputs.Select((o, i) => new CompletionChoice(plan.Echo ? plan.Prompt + o.Text : o.Text, i, o.Logprobs, o.Finish, o.Alignment)).ToList(), usage), ServerJson.Options);
        }

        // Streaming: the first event is awaited before the 200 goes out, so a full queue is still a 503.
        var events = m.Engine.StreamAsync(plan.Request, ctx.RequestAborted).GetAsyncEnumerator(ctx.RequestAborted);
        bool has;
        try
        {
            has = await events.MoveNextAsync();
        }
        catch
        {
            await events.DisposeAsync();
            throw;
        }
        ctx.Items[OutcomeKey] = "ok";
        return TypedResults.ServerSentEvents(Frames(ctx, server, m, plan, chat, id, created, route, clock, events, has, promptScore));
    }

    /// <summary>
    /// echo with max_tokens 0: the prompt scored by teacher forcing (batched with the engine's other requests); each choice
    /// is the prompt with, on logprobs, its tokens' log-probabilities (the first null). Streamed as one chunk per choice.
    /// </summary>
    private static async Task<IResult> ScoreOnly(HttpContext ctx, TiltServer server, ServedModel m, RequestPlan plan, string id, long created, string route, Stopwatch clock)
    {
        ScoreResult score;
        try
        {
            score = await m.Engine.ScoreAsync(plan.Prompt, "", plan.TopLogprobs, includePrompt: true, ctx.RequestAborted);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            server.OnFinished(new FinishedRequest(route, "cancelled", 0, DateTime.UtcNow));
            throw;
        }
        var logprobs = plan.Logprobs ? LogprobShapes.Echo(m.Model, plan.Prompt, score.PromptLogProbs!, plan.TopLogprobs) : null;
        var choices = Enumerable.Range(0, plan.Choices).Select(i => new CompletionChoice(plan.Prompt, i, logprobs, "length", null)).ToList();
        var usage = new Usage(plan.PromptTokens, 0, plan.PromptTokens);
        server.Metrics.RequestDuration.WithLabels(route).Observe(clock.Elapsed.TotalSeconds);
        if (!plan.Stream)
        {
            server.OnFinished(new FinishedRequest(route, "ok", 0, DateTime.UtcNow));
            return TypedResults.Json(new CompletionResponse(id, "text_completion", created, m.Id, choices, usage), ServerJson.Options);
        }
        ctx.Items[OutcomeKey] = "ok";
        var frames = choices.Select(c => Json(new CompletionResponse(id, "text_completion", created, m.Id, [c], null))).ToList();
        if (plan.IncludeUsage) frames.Add(Json(new CompletionResponse(id, "text_completion", created, m.Id, [], usage)));
        frames.Add("[DONE]");
        server.OnFinished(new FinishedRequest(route, "ok", frames.Count, DateTime.UtcNow));
        return TypedResults.ServerSentEvents(frames.ToAsyncEnumerable());
    }

    private static async IAsyncEnumerable<string> Frames(HttpContext ctx, TiltServer server, ServedModel m, RequestPlan plan, bool chat, string id, long created,
        string route, Stopwatch clock, IAsyncEnumerator<AlignEvent> events, bool has, Task<ScoreResult>? promptScore,
        [EnumeratorCancellation] CancellationToken token = default)
    {
        // Characters of each choice's text streamed so far: the engine streams nothing past a stop, so the final frame
        // carries the rest of the returned text (what was held back while it could still begin a stop).
        var streamed = new int[plan.Choices];
        // Text offsets of the streamed tokens' logprobs, per choice (completions: from the prompt's end with echo).
        var offsets = Enumerable.Repeat(plan.Echo ? plan.Prompt.Length : 0, plan.Choices).ToArray();
        var samples = new List<AlignedSample>();
        int frames = 0;
        bool firstText = true;
        string outcome = "error";
        ApiException? failure = null;
        try
        {
            if (chat)
            {
                for (int i = 0; i < plan.Choices; i++)
                {
                    frames++;
                    yield return Json(new ChatResponse(id, "chat.completion.chunk", created, m.Id, [new ChatChoice(i, null, new AssistantMessage("assistant", ""), null, null, null)], null));
                }
            }
            else if (plan.Echo)
            {
                var echoed = promptScore is null ? null : LogprobShapes.Echo(m.Model, plan.Prompt, (await promptScore).PromptLogProbs!, plan.TopLogprobs);
                for (int i = 0; i < plan.Choices; i++)
                {
                    frames++;
                    yield return Json(new CompletionResponse(id, "text_completion", created, m.Id, [new CompletionChoice(plan.Prompt, i, echoed, null, null)], null));
                }
            }

            while (has)
            {
                string? frame = null;
                switch (events.Current)
                {
                    case TextAccepted t when t.Sample < plan.Choices:
                        streamed[t.Sample] += t.TextDelta.Length;
                        object? chunkLogprobs = null;
                        if (plan.Logprobs && t.TokenLogProbs is { Count: > 0 } lps)
                            chunkLogprobs = chat ? LogprobShapes.Chat(m.Model, lps) : LogprobShapes.Completion(m.Model, lps, plan.TopLogprobs, ref offsets[t.Sample]);
                        if (t.TextDelta.Length > 0 || chunkLogprobs is not null) frame = TextChunk(m, chat, id, created, t.Sample, t.TextDelta, chunkLogprobs);
                        break;
                    case SampleCompleted c when c.Result.Index < plan.Choices:
                        var s = c.Result;
                        samples.Add(s);
                        server.Metrics.Record(m.Id, plan.Strategy, s);
                        string rest = streamed[s.Index] <= s.Text.Length ? s.Text[streamed[s.Index]..] : "";
                        var shaped = Shape(m, plan, s);
                        // The final frame of a streamed choice carries no per-token logprobs (its chunks did), only log p(y|x).
                        object? final = !plan.Logprobs ? null : chat ? new ChatLogprobsDto([], s.LogProb) : new LogprobsDto([], [], null, [], s.LogProb);
                        frame = chat
                            ? Json(new ChatResponse(id, "chat.completion.chunk", created, m.Id,
                                [new ChatChoice(s.Index, null, new AssistantMessage(null, rest), final, shaped.Finish, shaped.Alignment)], null))
                            : Json(new CompletionResponse(id, "text_completion", created, m.Id,
                                [new CompletionChoice(rest, s.Index, final, shaped.Finish, shaped.Alignment)], null));
                        break;
                }
                if (frame is not null)
                {
                    if (firstText)
                    {
                        firstText = false;
                        server.Metrics.TimeToFirstText.WithLabels(m.Id).Observe(clock.Elapsed.TotalSeconds);
                    }
                    frames++;
                    yield return frame;
                }
                failure = null;
                try
                {
                    has = await events.MoveNextAsync();
                }
                catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
                {
                    outcome = "cancelled";
                    yield break;
                }
                catch (Exception e)
                {
                    failure = ToApi(e);
                    has = false;
                }
                if (failure is not null)
                {
                    outcome = Outcome(failure.Status);
                    frames++;
                    yield return JsonSerializer.Serialize(failure.ToBody(), ServerJson.Options);
                    yield break;
                }
            }

            if (plan.IncludeUsage)
            {
                var usage = Usage(plan, samples);
                frames++;
                yield return chat
                    ? Json(new ChatResponse(id, "chat.completion.chunk", created, m.Id, [], usage))
                    : Json(new CompletionResponse(id, "text_completion", created, m.Id, [], usage));
            }
            outcome = "ok";
            frames++;
            yield return "[DONE]";
        }
        finally
        {
            if (outcome == "error" && ctx.RequestAborted.IsCancellationRequested) outcome = "cancelled";
            ctx.Items[OutcomeKey] = outcome;
            await events.DisposeAsync();
            server.Metrics.RequestDuration.WithLabels(route).Observe(clock.Elapsed.TotalSeconds);
            server.OnFinished(new FinishedRequest(route, outcome, frames, DateTime.UtcNow));
        }
    }

    private static string TextChunk(ServedModel m, bool chat, string id, long created, int index, string text, object? logprobs) => chat
        ? Json(new ChatResponse(id, "chat.completion.chunk", created, m.Id, [new ChatChoice(index, null, new AssistantMessage(null, text), logprobs, null, null)], null))
        : Json(new CompletionResponse(id, "text_completion", created, m.Id, [new CompletionChoice(text, index, logprobs, null, null)], null));

    private static string Json<T>(T value) => JsonSerializer.Serialize(value, ServerJson.Options);

    private sealed record Shaped(string Text, string Finish, AlignmentReport Alignment, LogprobsDto? Logprobs, ChatLogprobsDto? ChatLogprobs);

    private static Shaped Shape(ServedModel m, RequestPlan plan, AlignedSample s)
    {
        string finish = s.Finish is AlignFinish.Eos or AlignFinish.Stop ? "stop" : "length";
        var candidates = s.Candidates.Count == 0 ? null : Candidates(s);
        var report = new AlignmentReport(plan.Strategy, plan.RewardName, Finite(s.Reward), s.LogProb,
            Kl(s.Kl), s.KlBound is { } b ? Kl(b) : null, s.TokensEvaluated,
            new TimingsDto(s.Timings.Prefill.TotalMilliseconds, s.Timings.FirstAccepted.TotalMilliseconds, s.Timings.Total.TotalMilliseconds,
                s.Timings.DecodeCalls, s.Timings.PerStep.TotalMilliseconds),
            s.WinRateVsCandidates, candidates);
        LogprobsDto? logprobs = null;
        ChatLogprobsDto? chatLogprobs = null;
        if (plan.Logprobs && s.TokenLogProbs is { } lps)
        {
            int offset = plan.Echo ? plan.Prompt.Length : 0;
            logprobs = LogprobShapes.Completion(m.Model, lps, plan.TopLogprobs, ref offset, s.LogProb);
            chatLogprobs = LogprobShapes.Chat(m.Model, lps, s.LogProb);
        }
        return new Shaped(s.Text, finish, report, logprobs, chatLogprobs);
    }

    private static List<CandidateDto> Candidates(AlignedSample s)
    {
        bool marked = false;
        var list = new List<CandidateDto>(s.Candidates.Count);
        foreach (var c in s.Candidates)
        {
            bool selected = !marked && c.Tokens.SequenceEqual(s.Tokens);
            marked |= selected;
            list.Add(new CandidateDto(c.Text, Finite(c.Reward), c.LogProb, selected, c.Rejected ? true : null));
        }
        return list;
    }

    private static KlDto Kl(KlReport k) => new(Finite(k.Value), Snake(k.Method.ToString()), Snake(k.Band.ToString()));

    private static double? Finite(double x) => double.IsFinite(x) ? x : null;

    private static string Snake(string pascal) => JsonNamingPolicy.SnakeCaseLower.ConvertName(pascal);

    private static Usage Usage(RequestPlan plan, IReadOnlyList<AlignedSample> samples)
    {
        int completion = samples.Sum(s => s.Tokens.Count);
        return new Usage(plan.PromptTokens, completion, plan.PromptTokens + completion);
    }

    // ---- input ----

    private static async Task<T> ReadBody<T>(HttpContext ctx, RequestLimits limits) where T : class
    {
        long limit = limits.MaxBodyBytes;
        if (ctx.Request.ContentLength > limit) throw TooLarge(limit);
        var buffer = new MemoryStream();
        var chunk = new byte[16384];
        try
        {
            int read;
            while ((read = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
            {
                if (buffer.Length + read > limit) throw TooLarge(limit);
                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException e)
        {
            // Kestrel's own verdicts on the body (too large, too slow, malformed chunked framing): the client's, never a 500.
            throw e.StatusCode switch
            {
                StatusCodes.Status413PayloadTooLarge => TooLarge(limit),
                StatusCodes.Status408RequestTimeout => new ApiException(408,
                    "the request body did not arrive in time (slower than 240 bytes/s after the grace period): send the whole body at once", null, "request_timeout"),
                var status => new ApiException(status is >= 400 and < 500 ? status : 400, $"malformed request body: {e.Message}", null, "invalid_request"),
            };
        }
        if (buffer.Length == 0) throw new ApiException(400, "the request body is empty: send a JSON object", null, "invalid_json");
        if (InvalidUtf8At(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)) is { } bad)
            throw new ApiException(400, $"the request body is not valid UTF-8 (byte 0x{buffer.GetBuffer()[bad]:X2} at offset {bad}): JSON text must be UTF-8", null, "invalid_json");
        CheckEscapes(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        try
        {
            return JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), ServerJson.Options)
                   ?? throw new ApiException(400, "the request body must be a JSON object, got null", null, "invalid_json");
        }
        catch (JsonException e)
        {
            string? param = e.Path is { Length: > 2 } path ? path[2..] : null;
            string what = param is null ? "the request body is not valid JSON" : $"'{param}' has the wrong type or an invalid value";
            string where = e.LineNumber is { } line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1})" : "";
            throw new ApiException(400, what + where + (e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? ": unknown field in alignment" : ""), param, "invalid_json");
        }
    }

    /// <summary>
    /// Refuses a string anywhere in the body whose escapes decode to no text (an escaped high surrogate with no low one):
    /// System.Text.Json throws InvalidOperationException for it wherever the string is read, which would be a 500.
    /// Malformed JSON is left to the deserializer, which reports its position.
    /// </summary>
    private static void CheckEscapes(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = ServerJson.Options.MaxDepth });
        var path = new List<(bool IsArray, int Index, string? Name)>(); // where the reader is, to name the field
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        NextItem();
                        path.Add((reader.TokenType == JsonTokenType.StartArray, -1, null));
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        path.RemoveAt(path.Count - 1);
                        break;
                    case JsonTokenType.PropertyName:
                        path[^1] = (false, -1, Decode(ref reader, path));
                        break;
                    default:
                        NextItem();
                        if (reader.TokenType == JsonTokenType.String && reader.ValueIsEscaped) Decode(ref reader, path);
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // Reported by the deserializer, with line and byte.
        }

        void NextItem()
        {
            if (path.Count > 0 && path[^1].IsArray) path[^1] = (true, path[^1].Index + 1, null);
        }

        static string Decode(ref Utf8JsonReader reader, List<(bool IsArray, int Index, string? Name)> path)
        {
            try
            {
                return reader.GetString()!;
            }
            catch (InvalidOperationException)
            {
                var where = new StringBuilder();
                foreach (var (isArray, index, name) in path)
                {
                    if (isArray) where.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{index}]");
                    else if (name is not null) where.Append(where.Length > 0 ? "." : "").Append(name);
                }
                string? param = where.Length > 0 ? where.ToString() : null;
                throw new ApiException(400, $"{param ?? "a string"} holds an escaped lone UTF-16 surrogate (such as \\ud800), which is not Unicode text",
                    param, "invalid_value");
            }
        }
    }

    /// <summary>The offset of the first byte that is not part of valid UTF-8, or null when all are.</summary>
    private static int? InvalidUtf8At(ReadOnlySpan<byte> bytes)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return null;
        var chars = new char[bytes.Length];
        System.Text.Unicode.Utf8.ToUtf16(bytes, chars, out int read, out _, replaceInvalidSequences: false);
        return read;
    }

    /// <summary>
    /// A JSON string field as text the tokenizer can take: an escaped lone surrogate ("\ud800") decodes to a string that
    /// is not Unicode and cannot be encoded as UTF-8, so it is refused here, naming the field.
    /// </summary>
    private static string Text(JsonElement e, string param)
    {
        string text;
        try
        {
            text = e.GetString()!;
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json refuses to decode an escaped high surrogate that no low one follows.
            throw ApiException.BadField(param, $"{param} holds an escaped lone UTF-16 surrogate (such as \\ud800), which is not Unicode text");
        }
        for (int i = 0; i < text.Length; i++)
        {
            if (!char.IsSurrogate(text[i])) continue;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            throw ApiException.BadField(param, $"{param} holds a lone UTF-16 surrogate (\\u{(int)text[i]:X4} at character {i}), which is not Unicode text");
        }
        return text;
    }

    private static ApiException TooLarge(long limit) => new(413, $"the request body is larger than {limit} bytes", null, "request_too_large");

    private static string Prompt(JsonElement? prompt)
    {
        if (prompt is not { } e || e.ValueKind == JsonValueKind.Null) throw ApiException.BadField("prompt", "prompt is required");
        if (e.ValueKind == JsonValueKind.String) return Text(e, "prompt");
        if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 1 && e[0].ValueKind == JsonValueKind.String) return Text(e[0], "prompt");
        throw ApiException.BadField("prompt", "prompt must be a string or an array of one string (token arrays and batches of prompts are not served)");
    }

    private static List<ChatMessage> Messages(List<ChatMessageDto>? messages, RequestLimits limits)
    {
        if (messages is null || messages.Count == 0) throw ApiException.BadField("messages", "messages must be a non-empty array");
        if (messages.Count > limits.MaxMessages)
            throw new ApiException(400, $"messages holds {messages.Count} messages; the limit is {limits.MaxMessages}", "messages", "out_of_range");
        var list = new List<ChatMessage>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m is null) throw ApiException.BadField($"messages[{i}]", $"messages[{i}] must be an object");
            if (m.Role is not ("system" or "developer" or "user" or "assistant"))
                throw ApiException.BadField($"messages[{i}].role", $"messages[{i}].role must be system, developer, user or assistant, got '{m.Role}'");
            list.Add(new ChatMessage(m.Role == "developer" ? "system" : m.Role, Content(m.Content, i)));
        }
        return list;
    }

    private static string Content(JsonElement? content, int i)
    {
        if (content is { ValueKind: JsonValueKind.String } s) return Text(s, $"messages[{i}].content");
        if (content is { ValueKind: JsonValueKind.Array } parts)
        {
            var text = new StringBuilder();
            foreach (var part in parts.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.GetString() != "text"
                    || !part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                    throw ApiException.BadField($"messages[{i}].content", $"messages[{i}].content parts must be {{\"type\": \"text\", \"text\": ...}} (only text is served)");
                text.Append(Text(t, $"messages[{i}].content"));
            }
            return text.ToString();
        }
        throw ApiException.BadField($"messages[{i}].content", $"messages[{i}].content must be a string or an array of text parts");
    }

    // ---- errors and admission ----

    private static ServedModels Ready(TiltServer server) =>
        server.Models ?? throw new ApiException(503, server.ModelReady.IsFaulted ? "a model failed to load" : "the models are still loading", null, "model_loading") { RetryAfterSeconds = 1 };

    private static ServedModels Admit(TiltServer server)
    {
        if (server.Draining) throw new ApiException(503, "the server is shutting down", null, "shutting_down") { RetryAfterSeconds = 1 };
        return Ready(server);
    }

    private static async Task<IResult> Guard(HttpContext ctx, ILogger log, Func<Task<IResult>> body)
    {
        try
        {
            return await body();
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            ctx.Items[OutcomeKey] = "cancelled";
            return TypedResults.Empty;
        }
        catch (Exception e)
        {
            var api = ToApi(e);
            if (api.Status >= 500 && api.Code == "internal_error") log.LogError(e, "request failed");
            // The unread rest of an oversized body is not drained: the connection closes after the 413.
            if (api.Status == 413) ctx.Response.Headers.Connection = "close";
            if (api.RetryAfterSeconds is { } seconds) ctx.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Error(api);
        }
    }

    private static ApiException ToApi(Exception e) => e switch
    {
        ApiException api => api,
        EngineStoppingException => new ApiException(503, "the server is shutting down", null, "shutting_down") { RetryAfterSeconds = 1 },
        EngineBusyException busy => new ApiException(503, busy.Message, null, "engine_busy") { RetryAfterSeconds = 1 },
        OperationCanceledException => new ApiException(503, "the server is shutting down; the request was cancelled", null, "shutting_down") { RetryAfterSeconds = 1 },
        TiltException t => new ApiException(400, t.Message, null, "invalid_request"),
        ArgumentException a => new ApiException(400, a.Message, a.ParamName, "invalid_value"),
        _ => new ApiException(500, "internal server error", null, "internal_error"),
    };

    private static IResult Error(ApiException e) => TypedResults.Json(e.ToBody(), ServerJson.Options, statusCode: e.Status);

    private static readonly HashSet<string> ProbePaths = ["/health", "/health/ready", "/health/live"];

    private static bool IsProbe(PathString path) => path.Value is { } p && ProbePaths.Contains(p);

    private static string Outcome(int status) => status switch
    {
        < 400 => "ok",
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        405 => "not_found",
        408 => "timeout",
        413 => "too_large",
        429 or 503 => "busy",
        _ => "error",
    };
}
