using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;
using Tilt.Engine;
using Microsoft.Extensions.Options;
using Tilt.Engine.IO;
using Tilt.Hosting;

namespace Tilt.Server;

/// <summary>
/// The OpenAI-compatible HTTP server: Kestrel (or a test host), minimal APIs, and the models of Tilt.Hosting's
/// <c>AddTilt</c> (one engine per model, its options validated once, loaded in the background). It listens at once;
/// /health answers 200 only once every model is loaded. Requests choose a model by their <c>model</c> field
/// (<see cref="ServedModels"/>).
/// </summary>
public sealed class TiltServer : IAsyncDisposable
{
    private readonly ServerOptions _options;
    private readonly TaskCompletionSource<ServedModels> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly FileSandbox _sandbox;
    private ServedModels? _models;
    private volatile bool _draining;
    private int _disposed;

    /// <summary>
    /// How long the host waits after the drain deadline for cancelled requests to end and Kestrel to close (a pod's
    /// termination grace period covers preStop + the drain + this: deploy/k8s/deployment.yaml).
    /// </summary>
    internal static readonly TimeSpan ShutdownMargin = TimeSpan.FromSeconds(5);

    private TiltServer(ServerOptions options, Action<TiltOptions> models, Action<WebApplicationBuilder>? configure)
    {
        _options = options;
        _sandbox = new FileSandbox(options.AllowFilesDirectory);
        // Read after the models load; a path that cannot be a catalog at all is refused before the server listens.
        if (options.RewardsFile is { } rewards)
        {
            try
            {
                InputFile.Check(rewards, "reward catalog");
            }
            catch (TiltException e)
            {
                throw new TiltException($"--rewards {rewards}: {e.Message}", e);
            }
        }
        Metrics = new ServerMetrics(() => _models);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "tilt", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // The engines: loaded while the server already answers probes; they start draining when the host starts stopping
        // (before Kestrel closes), so Kestrel's wait for in-flight requests is bounded by the drain.
        builder.Services.AddTilt(o =>
        {
            models(o);
            o.LoadInBackground = true;
        });
        builder.Services.AddOptions<HostOptions>().Configure<IOptions<TiltOptions>>((h, tilt) => h.ShutdownTimeout = tilt.Value.DrainTimeout + ShutdownMargin);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.Limits.MaxBodyBytes;
            k.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: options.Limits.BodyGracePeriod);
            k.AddServerHeader = false;
            if (options.Host == "localhost") k.ListenLocalhost(options.Port);
            else if (IPAddress.TryParse(options.Host, out var address)) k.Listen(address, options.Port);
            else throw new TiltException($"--host must be an IP address or localhost, got '{options.Host}'");
        });
        configure?.Invoke(builder);
        App = Build(builder);
        Engines = App.Services.GetRequiredService<ITiltEngines>();
        // ApplicationStopping comes before Kestrel closes its listeners: from here new requests get 503 (and the engines'
        // drain deadline starts, after which in-flight requests are cancelled; Kestrel waits for them to end).
        App.Lifetime.ApplicationStopping.Register(() => _draining = true);
        Endpoints.Map(App, this);
    }

    /// <summary>
    /// Creates a server over the models <paramref name="models"/> configures (<c>options.AddModel(name, path)</c>, capacity,
    /// KV cache, threads, aliases, drain timeout); they load in the background after <see cref="StartAsync"/>.
    /// </summary>
    /// <param name="configure">Changes to the host before it is built (tests use a TestServer).</param>
    /// <exception cref="TiltException">A setting is invalid (every failure, named by its <c>Tilt:...</c> key), or the host or rewards path is.</exception>
    public static TiltServer Create(ServerOptions options, Action<TiltOptions> models, Action<WebApplicationBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(models);
        return new TiltServer(options, models, configure);
    }

    public WebApplication App { get; }

    /// <summary>The engines, from Tilt.Hosting (loaded or not).</summary>
    public ITiltEngines Engines { get; }

    internal ServerOptions Options => _options;
    internal ServerMetrics Metrics { get; }
    internal FileSandbox Sandbox => _sandbox;
    internal bool Draining => _draining;

    /// <summary>Completes with the models once all are loaded and their reward catalogs read; faults when one failed.</summary>
    public Task<ServedModels> ModelReady => _ready.Task;

    /// <summary>The served models, or null while they load.</summary>
    public ServedModels? Models => _models;

    /// <summary>Called when a generation request ends (tests observe cancellation and shutdown through it).</summary>
    internal event Action<FinishedRequest>? RequestFinished;

    /// <summary>The addresses Kestrel bound (with the real port when 0 was asked for).</summary>
    public IReadOnlyList<string> Addresses =>
        App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];

    /// <summary>Starts listening, then loads the models in the background.</summary>
    /// <exception cref="TiltException">The address cannot be bound (in use, not this machine's, not permitted), or a setting is invalid.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await App.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OptionsValidationException e)
        {
            throw SettingsError(e);
        }
        catch (Exception e) when (e is IOException or SocketException or UnauthorizedAccessException)
        {
            // Kestrel wraps "address already in use" in an IOException and lets "cannot assign requested address" (a
            // host that is not this machine's) through as a SocketException: both are the user's to fix.
            string why = (e.InnerException is SocketException inner ? inner.Message : e.Message).ReplaceLineEndings(" ");
            throw new TiltException($"cannot listen on {_options.Host}:{_options.Port}: {why}", e);
        }
        _ = Task.Run(ServeWhenLoadedAsync, CancellationToken.None);
    }

    private async Task ServeWhenLoadedAsync()
    {
        try
        {
            await Engines.WhenLoaded.ConfigureAwait(false);
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            // One catalog per model: the same file, with its heads checked against (and bound to) each model.
            var served = Engines.Names.Select(name => Engines[name])
                .Select(e => new ServedModel(e, new RewardCatalog(_options.RewardsFile, _sandbox, _options.Limits, e.Model), created))
                .ToList();
            var models = new ServedModels(Engines, served);
            _models = models;
            _ready.TrySetResult(models);
        }
        catch (Exception e)
        {
            _ready.TrySetException(e);
        }
    }

    /// <summary>Stops admitting, drains in-flight requests within the drain timeout (<c>TiltOptions.DrainTimeout</c>), then stops.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => App.StopAsync(cancellationToken);

    /// <summary>Runs until the host is told to stop (SIGTERM, Ctrl+C, <paramref name="cancellationToken"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => App.WaitForShutdownAsync(cancellationToken);

    internal void OnFinished(FinishedRequest record) => RequestFinished?.Invoke(record);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // The host's services include the engines: disposing it stops and releases them.
        await App.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Builds the host, which reads the model settings (for its shutdown timeout) and so validates them: their failures
    /// become one user error naming every setting.
    /// </summary>
    private static WebApplication Build(WebApplicationBuilder builder)
    {
        try
        {
            return builder.Build();
        }
        catch (OptionsValidationException e)
        {
            throw SettingsError(e);
        }
    }

    private static TiltException SettingsError(OptionsValidationException e) => new(string.Join("; ", e.Failures), e);
}

/// <summary>How a generation request ended: its outcome label, the SSE data frames sent, and when it finished.</summary>
internal sealed record FinishedRequest(string Route, string Outcome, int FramesSent, DateTime FinishedUtc);

/// <summary>Constant-time API key check.</summary>
internal static class ApiKeyCheck
{
    public static bool Matches(string? header, byte[] expectedHash)
    {
        const string Scheme = "Bearer ";
        string given = header is not null && header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) ? header[Scheme.Length..].Trim() : "";
        // Comparing hashes keeps the time independent of where the strings differ and of the key's length.
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), expectedHash) && given.Length > 0;
    }
}
