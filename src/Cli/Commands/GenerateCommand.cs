using System.CommandLine;
using System.Text.Json;
using Tilt.Engine.Sampling;
using Tilt.Kernels;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt generate</c>: base-model sampling of n parallel continuations.</summary>
internal static class GenerateCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new ModelOptions();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text.", DefaultValueFactory = _ => "Once upon a time" };
        var n = new Option<int>("--n", "-n") { Description = "Parallel samples decoded as one batch (1..256).", DefaultValueFactory = _ => 1 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Generated tokens per sample at most.", DefaultValueFactory = _ => 128 };
        var seed = new Option<ulong>("--seed") { Description = "RNG seed: the same seed gives the same samples.", DefaultValueFactory = _ => 0UL };
        var temperature = new Option<float>("--temperature", "-t") { Description = "Sampling temperature; 0 = greedy.", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens; 0 = off.", DefaultValueFactory = _ => 0 };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling mass in (0, 1]; 1 = off.", DefaultValueFactory = _ => 1f };
        var json = new Option<bool>("--json") { Description = "One JSON object per sample (text, tokens, logprob, finish), one per line." };

        var command = new Command("generate", "Sample n continuations of a prompt from the base model in one batch that shares the prompt's KV cache.");
        model.AddTo(command);
        foreach (var o in new Option[] { prompt, n, maxTokens, seed, temperature, topK, topP, json }) command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            // Validate the cheap things before loading anything.
            var options = new GenerationOptions
            {
                Samples = parse.GetValue(n),
                MaxTokens = parse.GetValue(maxTokens),
                Seed = parse.GetValue(seed),
                Sampling = new SamplingParameters(parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(topP)),
                Threads = model.GetThreads(parse),
            };
            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            var sampler = new BaseSampler(lm, kernels);
            string text = parse.GetValue(prompt)!;
            bool asJson = parse.GetValue(json);

            if (!asJson && options.Samples == 1)
            {
                // One sample: stream it as it is written.
                await console.Out.WriteAsync(text);
                await foreach (var e in sampler.StreamAsync(text, options, cancellationToken))
                {
                    if (e is TokenGenerated tg) await console.Out.WriteAsync(tg.TextDelta);
                    else if (e is SampleFinished f) await console.Out.WriteLineAsync($"{Environment.NewLine}[logprob {f.Sample.LogProb:F3}, {f.Sample.Tokens.Count} tokens, {f.Sample.Finish.ToString().ToLowerInvariant()}]");
                    else if (e is GenerationCompleted c) WriteTimings(console, c.Timings);
                }
                return 0;
            }

            var result = await sampler.GenerateAsync(text, options, cancellationToken);
            foreach (var s in result.Samples)
            {
                if (asJson)
                {
                    await console.Out.WriteLineAsync(JsonSerializer.Serialize(new SampleJson(
                        s.Index, s.Text, s.Tokens, s.LogProb, s.SamplerLogProb, s.Finish.ToString().ToLowerInvariant()), CliJson.Options));
                }
                else
                {
                    await console.Out.WriteLineAsync($"--- sample {s.Index} (logprob {s.LogProb:F3}, {s.Tokens.Count} tokens, {s.Finish.ToString().ToLowerInvariant()})");
                    await console.Out.WriteLineAsync(text + s.Text);
                }
            }
            if (!asJson) WriteTimings(console, result.Timings);
            return 0;
        }));
        return command;
    }

    private static void WriteTimings(CliConsole console, GenerationTimings t) =>
        console.Error.WriteLine($"[{t.GeneratedTokens} tokens in {t.Steps + 1} steps, prefill {t.Prefill.TotalMilliseconds:F1} ms, decode {t.Decode.TotalMilliseconds:F1} ms, {t.TokensPerSecond:F0} tokens/s]");

    private sealed record SampleJson(int Index, string Text, IReadOnlyList<int> Tokens, double Logprob, double SamplerLogprob, string Finish);
}
