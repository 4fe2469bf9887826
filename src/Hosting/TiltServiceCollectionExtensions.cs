using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Tilt.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registration of the Tilt engine in a Generic Host (worker, ASP.NET Core, ...).</summary>
public static class TiltServiceCollectionExtensions
{
    /// <summary>
    /// Registers one decoding engine per model in <see cref="TiltOptions.Models"/>: a hosted service loads them when the
    /// host starts (after checking the options: errors name the setting), stops them with a drain when it stops, and logs
    /// through ILogger. Inject <see cref="ITiltEngines"/> to send requests. Calling it again adds more configuration.
    /// Also registers an <see cref="IChatClient"/> (<see cref="TiltChatClient"/>) per model, keyed by the model's name
    /// (<c>[FromKeyedServices("stories")] IChatClient chat</c>), and an unkeyed one for <see cref="ITiltEngines.Default"/>;
    /// an <see cref="IChatClient"/> registered before keeps its place.
    /// </summary>
    /// <example>
    /// <code>
    /// builder.Services.AddTilt(o => o.AddModel("stories", "models/stories260K.gguf"));
    /// // later, from any injected ITiltEngines engines:
    /// var samples = await engines["stories"].RunAsync(new DecodingRequest { Prompt = "Once", Options = new BestOfNOptions { N = 8 }, Reward = reward });
    /// </code>
    /// </example>
    public static IServiceCollection AddTilt(this IServiceCollection services, Action<TiltOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<TiltOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TiltOptions>, TiltOptionsValidator>());
        if (services.Any(d => d.ServiceType == typeof(TiltEngines))) return services;
        services.AddSingleton<TiltEngines>();
        services.AddSingleton<ITiltEngines>(s => s.GetRequiredService<TiltEngines>());
        services.AddSingleton<IHostedService>(s => s.GetRequiredService<TiltEngines>());
        services.TryAddSingleton<IChatClient>(s => new TiltChatClient(s.GetRequiredService<ITiltEngines>().Default));
        // Model names are known only once the options are read, so one registration answers any key (a model name);
        // an unknown name fails the resolution with the configured names.
        services.TryAddKeyedSingleton<IChatClient>(KeyedService.AnyKey, (s, key) => new TiltChatClient(
            s.GetRequiredService<ITiltEngines>()[key as string ?? throw new KeyNotFoundException($"a Tilt chat client is keyed by a model name, got {key}")]));
        return services;
    }

    /// <summary>
    /// Adds the health of every Tilt engine under <paramref name="name"/>: Unhealthy (<paramref name="failureStatus"/>) while
    /// a model is not loaded, Degraded while a queue is full, else Healthy; data per model: loaded, queued, running, live and
    /// max sequences. Needs <see cref="AddTilt(IServiceCollection, Action{TiltOptions})"/>.
    /// </summary>
    public static IHealthChecksBuilder AddTilt(this IHealthChecksBuilder builder, string name = "tilt",
        HealthStatus failureStatus = HealthStatus.Unhealthy, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(name, s => new TiltHealthCheck(s.GetRequiredService<ITiltEngines>()), failureStatus, tags));
    }
}
