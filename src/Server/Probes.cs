using Microsoft.AspNetCore.Http;
using Tilt.Hosting;

namespace Tilt.Server;

/// <summary>
/// The health probes. Whether a model is loaded, failed or full is Tilt.Hosting's one definition
/// (<see cref="TiltEngine.State"/>, <see cref="TiltEngine.IsFull"/>, the same the <c>AddTilt</c> health check reports);
/// the server adds its own draining and the JSON a slot-aware balancer weighs.
/// </summary>
internal static class Probes
{
    /// <summary>
    /// Readiness (/health, /health/ready): 503 while loading, after a load failure (no detail: the probe needs no key, and
    /// the error names server-side paths), while draining, and while every model is full; otherwise 200. The body carries
    /// the load summed over the models, and each model's own.
    /// </summary>
    public static IResult Readiness(TiltServer server)
    {
        if (server.Draining) return Json(new HealthReport("draining"), 503);
        if (server.ModelReady.IsFaulted) return Json(new HealthReport("failed"), 503);
        if (server.Models is not { } models) return Json(new HealthReport("loading"), 503);
        var each = models.All.Select(Of).ToList();
        // A replica stays in rotation while any model would admit a request: one busy model must not starve the others
        // (a request for it is refused with 503 engine_busy, which a balancer retries elsewhere).
        string status = each.FirstOrDefault(m => m.Status is not ("ok" or "busy"))?.Status ?? (each.All(m => m.Status == "busy") ? "busy" : "ok");
        var report = new HealthReport(status, each.Count == 1 ? each[0].Model : null,
            each.Sum(m => m.QueuedRequests), each.Sum(m => m.MaxQueuedRequests), each.Sum(m => m.RunningRequests),
            each.Sum(m => m.LiveSequences), each.Sum(m => m.MaxSequences), each);
        return Json(report, status == "ok" ? 200 : 503);
    }

    /// <summary>
    /// Liveness (/health/live): 200 while the process can still come good (loading, serving, draining); 503 only when a
    /// model failed to load, which only a restart can fix.
    /// </summary>
    public static IResult Liveness(TiltServer server) => server.ModelReady.IsFaulted
        ? Json(new HealthReport("failed"), 503)
        : Json(new HealthReport(server.Draining ? "draining" : server.Models is null ? "loading" : "ok"), 200);

    private static ModelHealth Of(ServedModel m)
    {
        var engine = m.Engine;
        var s = engine.Status;
        string status = engine.State switch
        {
            TiltEngineState.Loaded => engine.IsFull ? "busy" : "ok",
            TiltEngineState.Stopped => "draining",
            TiltEngineState.Failed => "failed",
            _ => "loading",
        };
        return new ModelHealth(m.Id, status, s?.QueuedRequests ?? 0, engine.Settings.MaxQueuedRequests, s?.RunningRequests ?? 0,
            s?.LiveSequences ?? 0, s?.MaxSequences ?? engine.Settings.MaxSequences);
    }

    private static IResult Json(HealthReport report, int status) => TypedResults.Json(report, ServerJson.Options, statusCode: status);
}

/// <summary>
/// The health probes' body (snake_case in JSON): the state, and once the models are loaded their load summed, the model's
/// id when there is one, and each model's own report.
/// </summary>
internal sealed record HealthReport(string Status, string? Model = null, int? QueuedRequests = null, int? MaxQueuedRequests = null,
    int? RunningRequests = null, int? LiveSequences = null, int? MaxSequences = null, IReadOnlyList<ModelHealth>? Models = null);

/// <summary>One model's readiness: <c>ok</c>, <c>busy</c> (<see cref="TiltEngine.IsFull"/>), <c>draining</c>, and its load.</summary>
internal sealed record ModelHealth(string Model, string Status, int QueuedRequests, int MaxQueuedRequests, int RunningRequests,
    int LiveSequences, int MaxSequences);
