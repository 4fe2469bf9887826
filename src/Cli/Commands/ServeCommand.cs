using Microsoft.Extensions.Logging;
using Tilt.Engine.Models.Gguf;
using Tilt.Server;

namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt serve</c>: the OpenAI-compatible HTTP server (docs/serving.md). The models are Tilt.Hosting's (<c>AddTilt</c>):
/// the options below become <c>TiltOptions</c>, checked by its validator, and every model gets its own engine.
/// </summary>
internal static class ServeCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new ModelOptions();
        var models = new Option<string[]>("--model", "-m")
        {
            Description = "[NAME=]FILE: a GGUF file or tabular model JSON to serve, named NAME (default: the file name without extension); " +
                $"repeat to serve several, routed by the request's model field (the first is the default). Defaults to ${DefaultModel.EnvironmentVariable}, else ../shared/models/{DefaultModel.FileName}.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var aliases = new Option<string[]>("--alias")
        {
            Description = "NAME=MODEL: another name requests may use for the served model MODEL (repeatable).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var host = new Option<string>("--host") { Description = "Address to bind (loopback by default; 0.0.0.0 exposes the server).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one).", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require Authorization: Bearer KEY on every route but /health (default: $TILT_API_KEY, else none)." };
        var maxSequences = new Option<int>("--max-sequences") { Description = "Sequences each model's engine holds at once over all requests (1..256).", DefaultValueFactory = _ => 64 };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait, per model; beyond, 503 with Retry-After.", DefaultValueFactory = _ => 256 };
        var rewards = new Option<string?>("--rewards") { Description = "JSON file naming rewards and value heads for every model: {\"rewards\": {NAME: SPEC}, \"value_heads\": {NAME: FILE}}." };
        var allowFiles = new Option<string?>("--allow-files") { Description = "Let requests' reward specs and value heads read files inside this directory (links resolved)." };
        var drain = new Option<int>("--drain-seconds") { Description = "On SIGTERM, let in-flight requests finish for this long, then cancel them.", DefaultValueFactory = _ => 10 };
        var budget = new Option<double>("--max-request-seconds")
        {
            Description = "Compute budget of one aligned request (decoding and reward scoring): past it, the output in progress is returned (1..3600).",
            DefaultValueFactory = _ => 120,
        };
        var f32 = new Option<bool>("--kv-f32") { Description = "F32 KV cache: outputs independent of what else is in the batch (to float rounding)." };

        var command = new Command("serve", "Serve one or more models over an OpenAI-compatible HTTP API (completions, chat, streaming) with aligned decoding.");
        command.Options.Add(models);
        model.AddTo(command, model: false);
        foreach (var o in new Option[] { aliases, host, port, apiKey, maxSequences, queue, rewards, allowFiles, drain, budget, f32 }) command.Options.Add(o);
        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            var specs = ServedModelSpecs.Parse(parse.GetValue(models) ?? [], parse.GetValue(aliases) ?? [], DefaultModel.Resolve);
            int seconds = parse.GetValue(drain);
            if (seconds < 0) throw new ArgumentException($"--drain-seconds must be >= 0, got {seconds}");
            double budgetSeconds = parse.GetValue(budget);
            if (!(budgetSeconds is >= 1 and <= 3600)) throw new ArgumentException($"--max-request-seconds must be between 1 and 3600, got {budgetSeconds}");
            int? threads = model.GetThreads(parse);
            if (parse.GetValue(model.Verbose)) LlamaNative.Log = line => console.Error.WriteLine(line);
            var options = new ServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                ApiKey = parse.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable("TILT_API_KEY") is { Length: > 0 } k ? k : null),
                RewardsFile = parse.GetValue(rewards),
                AllowFilesDirectory = parse.GetValue(allowFiles),
                Limits = new RequestLimits { MaxAlignmentTime = TimeSpan.FromSeconds(budgetSeconds) },
            };

            await using var server = TiltServer.Create(options, tilt =>
            {
                tilt.DrainTimeout = TimeSpan.FromSeconds(seconds);
                tilt.NativeLibraryPath = parse.GetValue(model.NativeLibrary);
                specs.AddTo(tilt, m =>
                {
                    m.MaxSequences = parse.GetValue(maxSequences);
                    m.MaxQueuedRequests = parse.GetValue(queue);
                    m.KvCacheType = parse.GetValue(f32) ? KvCacheType.F32 : KvCacheType.F16;
                    m.Threads = threads;
                    m.Backend = parse.GetValue(model.Backend);
                });
            },
            // A model that cannot be loaded is this command's one "error:" line; the engines' own log of it would repeat it
            // with a stack trace.
            host => host.Logging.AddFilter("Tilt.Hosting.TiltEngines", LogLevel.Critical));
            await server.StartAsync(cancellationToken);
            foreach (var address in server.Addresses) await console.Out.WriteLineAsync($"listening on {address}");
            await console.Out.FlushAsync(cancellationToken);
            // A model that cannot be loaded (or a catalog that does not fit it) is a TiltException naming the setting: exit 2.
            var ready = await server.ModelReady;
            await console.Out.WriteLineAsync($"ready: {string.Join(", ", ready.All.Select(m => $"{m.Id} ({m.Model.Info.Description})"))}");
            await console.Out.FlushAsync(cancellationToken);
            // SIGTERM / Ctrl+C: the host stops admitting, drains, and WaitForShutdownAsync returns; that is a clean exit.
            await server.WaitForShutdownAsync(CancellationToken.None);
            await console.Out.WriteLineAsync("stopped");
            return 0;
        }));
        return command;
    }
}
