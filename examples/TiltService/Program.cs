// A minimal service that embeds Tilt from its NuGet packages: the Generic Host loads the model at start-up
// (services.AddTilt), a worker sends one best-of-n request steered by the built-in sentiment lexicon, prints the
// winner and its reward, asks the same through Microsoft.Extensions.AI's IChatClient (registered by AddTilt per
// model), and stops the host.
//
//   dotnet run -- --model path/to/model.gguf        (or set TILT_MODEL; default: ../shared/models/stories260K.gguf
//                                                    found upward from here)
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tilt.Engine;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Hosting;
using Tilt.Engine.Requests;

var builder = Host.CreateApplicationBuilder(args);
// A failed start is reported below as one "error:" line; the host's own log of it would repeat it with a stack trace.
builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
string model;
try
{
    model = builder.Configuration["model"] ?? DefaultModel.Resolve();
}
catch (TiltException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

builder.Services.AddTilt(o => o.AddModel("stories", model).MaxSequences = 16);
builder.Services.AddHostedService<OneRequest>();

try
{
    await builder.Build().RunAsync();
}
catch (OptionsValidationException e)
{
    Console.Error.WriteLine($"error: {string.Join("; ", e.Failures)}");
    return 2;
}
catch (TiltException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

return Environment.ExitCode;

/// <summary>Sends one aligned request once the model is loaded, prints the result, and stops the host.</summary>
internal sealed class OneRequest(ITiltEngines engines, [FromKeyedServices("stories")] IChatClient chat, IHostApplicationLifetime lifetime)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            // Hosted services start in registration order: AddTilt's engines are loaded by now.
            double startup = (DateTime.Now - Process.GetCurrentProcess().StartTime).TotalMilliseconds;
            var clock = Stopwatch.StartNew();
            const string prompt = "Once upon a time";
            IReadOnlyList<AlignedSample> samples = await engines["stories"].RunAsync(new DecodingRequest
            {
                Prompt = prompt,
                Options = new BestOfNOptions { N = 8, MaxTokens = 48, Seed = 1 },
                Reward = LexiconReward.LoadBuiltIn(LexiconReward.Sentiment),
            }, stoppingToken);
            double latency = clock.Elapsed.TotalMilliseconds;
            AlignedSample best = samples[0];
            Console.WriteLine(prompt + best.Text);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"reward {best.Reward:0.###} (lexicon:sentiment, best of 8), KL {best.Kl.Value:0.###} nats, {best.TokensEvaluated} tokens evaluated"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"start-up {startup:0} ms (process start to model loaded), first request {latency:0} ms"));

            // The same kind of request as a chat: alignment travels in ChatOptions.AdditionalProperties["alignment"].
            var options = new ChatOptions
            {
                MaxOutputTokens = 48,
                Seed = 1,
                AdditionalProperties = new() { [TiltAlignment.PropertyName] = new TiltAlignment { Strategy = DecodingStrategy.BestOfN, N = 8 } },
            };
            ChatResponse response = await chat.GetResponseAsync(prompt, options, stoppingToken);
            var alignment = (TiltAlignmentResult)response.AdditionalProperties![TiltAlignment.PropertyName]!;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"chat: reward {alignment.Reward:0.###}, KL {alignment.Kl:0.###} nats ({alignment.KlMethod}), {response.Usage?.OutputTokenCount} output tokens"));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Environment.ExitCode = 1;
        }
        finally
        {
            lifetime.StopApplication();
        }
    }
}
