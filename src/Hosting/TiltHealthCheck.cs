using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Tilt.Hosting;

/// <summary>
/// Health of every Tilt engine: Unhealthy while a model is not loaded (starting, failed, stopping), Degraded while one is
/// full (<see cref="TiltEngine.IsFull"/>: new requests are refused with EngineBusyException), else Healthy. Data per model: loaded, queued, running, live and
/// max sequences. Registered by <c>services.AddHealthChecks().AddTilt()</c>.
/// </summary>
internal sealed class TiltHealthCheck(ITiltEngines engines) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        var notLoaded = new List<string>();
        var full = new List<string>();
        foreach (string name in engines.Names)
        {
            var engine = engines[name];
            data[$"{name}.loaded"] = engine.IsLoaded;
            data[$"{name}.state"] = engine.State.ToString();
            if (!engine.IsLoaded || engine.Status is not { } status)
            {
                notLoaded.Add(name);
                continue;
            }

            data[$"{name}.queued"] = status.QueuedRequests;
            data[$"{name}.running"] = status.RunningRequests;
            data[$"{name}.liveSequences"] = status.LiveSequences;
            data[$"{name}.maxSequences"] = status.MaxSequences;
            if (engine.IsFull) full.Add(name);
        }

        var result = notLoaded.Count > 0
            ? new HealthCheckResult(context.Registration.FailureStatus, $"not loaded: {string.Join(", ", notLoaded)}", data: data)
            : full.Count > 0
                ? HealthCheckResult.Degraded($"queue full: {string.Join(", ", full)}", data: data)
                : HealthCheckResult.Healthy($"{engines.Names.Count} model(s) loaded", data);
        return Task.FromResult(result);
    }
}
