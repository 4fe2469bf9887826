using System.CommandLine;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Server;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt serve</c>: the OpenAI-compatible HTTP server (docs/serving.md).</summary>
internal static class ServeCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new ModelOptions();
        var host = new Option<string>("--host") { Description = "Address to bind (loopback by default; 0.0.0.0 exposes the server).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one).", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require Authorization: Bearer KEY on every route but /health (default: $TILT_API_KEY, else none)." };
        var maxSequences = new Option<int>("--max-sequences") { Description = "Sequences the engine holds at once over all requests (1..256).", DefaultValueFactory = _ => 64 };
        var queue = new Option<int>("--queue") { Description = "Requests that may wait; beyond, 503 with Retry-After.", DefaultValueFactory = _ => 256 };
        var rewards = new Option<string?>("--rewards") { Description = "JSON file naming rewards and value heads: {\"rewards\": {NAME: SPEC}, \"value_heads\": {NAME: FILE}}." };
        var allowFiles = new Option<string?>("--allow-files") { Description = "Let requests' reward specs and value heads read files inside this directory (links resolved)." };
        var drain = new Option<int>("--drain-seconds") { Description = "On SIGTERM, let in-flight requests finish for this long, then cancel them.", DefaultValueFactory = _ => 10 };
        var f32 = new Option<bool>("--kv-f32") { Description = "F32 KV cache: outputs independent of what else is in the batch (to float rounding)." };

        var command = new Command("serve", "Serve the model over an OpenAI-compatible HTTP API (completions, chat, streaming) with aligned decoding.");
        model.AddTo(command);
        foreach (var o in new Option[] { host, port, apiKey, maxSequences, queue, rewards, allowFiles, drain, f32 }) command.Options.Add(o);
        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            var kv = parse.GetValue(f32) ? KvCacheType.F32 : KvCacheType.F16;
            var engineOptions = new EngineOptions
            {
                MaxSequences = parse.GetValue(maxSequences),
                MaxQueuedRequests = parse.GetValue(queue),
                KvCacheType = kv,
                Threads = parse.GetValue(model.Threads),
            };
            int seconds = parse.GetValue(drain);
            if (seconds < 0) throw new ArgumentException($"--drain-seconds must be >= 0, got {seconds}");
            var options = new ServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                ApiKey = parse.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable("TILT_API_KEY") is { Length: > 0 } k ? k : null),
                RewardsFile = parse.GetValue(rewards),
                AllowFilesDirectory = parse.GetValue(allowFiles),
                DrainTimeout = TimeSpan.FromSeconds(seconds),
                KvCacheType = kv,
                Threads = parse.GetValue(model.Threads),
            };

            await using var server = TiltServer.Create(options, _ => Task.Run(() =>
            {
                var lm = model.LoadModel(parse, console);
                try
                {
                    return new ServedModel(lm, model.CreateKernels(parse, console), engineOptions);
                }
                catch
                {
                    lm.Dispose();
                    throw;
                }
            }));
            await server.StartAsync(cancellationToken);
            foreach (var address in server.Addresses) await console.Out.WriteLineAsync($"listening on {address}");
            await console.Out.FlushAsync(cancellationToken);
            var ready = await server.ModelReady;
            await console.Out.WriteLineAsync($"ready: {ready.Id} ({ready.Model.Info.Description})");
            await console.Out.FlushAsync(cancellationToken);
            // SIGTERM / Ctrl+C: the host stops admitting, drains, and WaitForShutdownAsync returns; that is a clean exit.
            await server.WaitForShutdownAsync(CancellationToken.None);
            await console.Out.WriteLineAsync("stopped");
            return 0;
        }));
        return command;
    }
}
