using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Tilt.Engine.Requests;

namespace Tilt.Server;

/// <summary>Generation: a plan run on its model's engine, answered whole or streamed as server-sent events, in OpenAI's shapes.</summary>
internal static partial class Endpoints
{
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
}
