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
using Tilt.Engine.IO;

namespace Tilt.Server;

/// <summary>
/// The OpenAI-compatible HTTP server: Kestrel (or a test host), minimal APIs, one <see cref="ServedModel"/>. It listens
/// at once and loads the model in the background; /health answers 200 only once the model is loaded.
/// </summary>
public sealed class TiltServer : IAsyncDisposable
{
    private readonly ServerOptions _options;
    private readonly Func<CancellationToken, Task<ServedModel>> _load;
    private readonly TaskCompletionSource<ServedModel> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _loadCancel = new();
    private readonly FileSandbox _sandbox;
    private ServedModel? _model;
    private RewardCatalog? _catalog;
    private volatile bool _draining;
    private Task? _drain;
    private int _disposed;

    /// <summary>
    /// How long the host waits after the drain deadline for cancelled requests to end and Kestrel to close (a pod's
    /// termination grace period covers preStop + the drain + this: deploy/k8s/deployment.yaml).
    /// </summary>
    internal static readonly TimeSpan ShutdownMargin = TimeSpan.FromSeconds(5);

    private TiltServer(ServerOptions options, Func<CancellationToken, Task<ServedModel>> load, Action<WebApplicationBuilder>? configure)
    {
        _options = options;
        _load = load;
        _sandbox = new FileSandbox(options.AllowFilesDirectory);
        // Read after the model loads; a path that cannot be a catalog at all is refused before the server listens.
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
        Metrics = new ServerMetrics(() => _model);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "tilt", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.DrainTimeout + ShutdownMargin);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.Limits.MaxBodyBytes;
            k.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: options.Limits.BodyGracePeriod);
            k.AddServerHeader = false;
            if (options.Host == "localhost") k.ListenLocalhost(options.Port);
            else if (IPAddress.TryParse(options.Host, out var address)) k.Listen(address, options.Port);
            else throw new TiltException($"--host must be an IP address or localhost, got '{options.Host}'");
        });
        // Makes the host's stop wait for the drain (started by ApplicationStopping) to end.
        builder.Services.AddHostedService(_ => new DrainOnStop(this));
        configure?.Invoke(builder);
        App = builder.Build();
        // ApplicationStopping comes before Kestrel closes its listeners: from here new requests get 503, and the drain
        // deadline starts, after which in-flight requests are cancelled (Kestrel waits for them to end).
        App.Lifetime.ApplicationStopping.Register(() => Drain());
        Endpoints.Map(App, this);
    }

    /// <summary>Creates a server; <paramref name="loadModel"/> runs in the background after <see cref="StartAsync"/>.</summary>
    /// <param name="configure">Changes to the host before it is built (tests use a TestServer).</param>
    public static TiltServer Create(ServerOptions options, Func<CancellationToken, Task<ServedModel>> loadModel, Action<WebApplicationBuilder>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loadModel);
        return new TiltServer(options, loadModel, configure);
    }

    public WebApplication App { get; }

    internal ServerOptions Options => _options;
    internal ServerMetrics Metrics { get; }
    internal FileSandbox Sandbox => _sandbox;
    internal bool Draining => _draining;

    /// <summary>Completes with the model once it is loaded; faults when loading failed.</summary>
    public Task<ServedModel> ModelReady => _ready.Task;

    /// <summary>The loaded model, or null while it loads.</summary>
    public ServedModel? Model => _model;

    internal RewardCatalog? Catalog => _catalog;

    /// <summary>Called when a generation request ends (tests observe cancellation and shutdown through it).</summary>
    internal event Action<FinishedRequest>? RequestFinished;

    /// <summary>The addresses Kestrel bound (with the real port when 0 was asked for).</summary>
    public IReadOnlyList<string> Addresses =>
        App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];

    /// <summary>Starts listening, then loads the model in the background.</summary>
    /// <exception cref="TiltException">The address cannot be bound (in use, not this machine's, not permitted).</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await App.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or UnauthorizedAccessException)
        {
            // Kestrel wraps "address already in use" in an IOException and lets "cannot assign requested address" (a
            // host that is not this machine's) through as a SocketException: both are the user's to fix.
            string why = (e.InnerException is SocketException inner ? inner.Message : e.Message).ReplaceLineEndings(" ");
            throw new TiltException($"cannot listen on {_options.Host}:{_options.Port}: {why}", e);
        }
        _ = Task.Run(LoadAsync, CancellationToken.None);
    }

    private async Task LoadAsync()
    {
        try
        {
            var model = await _load(_loadCancel.Token).ConfigureAwait(false);
            _catalog = new RewardCatalog(_options.RewardsFile, _sandbox, _options.Limits, model.Model.Info);
            _model = model;
            _ready.TrySetResult(model);
        }
        catch (Exception e)
        {
            _ready.TrySetException(e);
        }
    }

    /// <summary>Stops admitting, drains in-flight requests within <see cref="ServerOptions.DrainTimeout"/>, then stops.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => App.StopAsync(cancellationToken);

    /// <summary>Runs until the host is told to stop (SIGTERM, Ctrl+C, <paramref name="cancellationToken"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => App.WaitForShutdownAsync(cancellationToken);

    internal void OnFinished(FinishedRequest record) => RequestFinished?.Invoke(record);

    /// <summary>Starts draining once; later calls return the same task.</summary>
    internal Task Drain()
    {
        lock (_ready)
        {
            _draining = true;
            return _drain ??= Task.Run(async () =>
            {
                await _loadCancel.CancelAsync().ConfigureAwait(false);
                if (_model is { } m) await m.Engine.StopAsync(_options.DrainTimeout).ConfigureAwait(false);
            });
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await App.DisposeAsync().ConfigureAwait(false);
        _loadCancel.Cancel();
        if (_ready.Task.IsCompletedSuccessfully) await _ready.Task.Result.DisposeAsync().ConfigureAwait(false);
        _loadCancel.Dispose();
    }

    private sealed class DrainOnStop(TiltServer server) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => server.Drain();
    }
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
