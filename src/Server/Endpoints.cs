using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;
using Tilt.Engine;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Server;

/// <summary>
/// The routes and the middleware (outcome metrics, API key), with admission and errors here; the generation handlers are in
/// Endpoints.Generation.cs, the reading of request bodies in Endpoints.Input.cs.
/// </summary>
internal static partial class Endpoints
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
