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
        var outputs = new OutputFlags();
        var json = new Option<bool>("--json") { Description = "One JSON object per sample (text, tokens, logprob, finish), one per line." };

        var command = new Command("generate", "Sample n continuations of a prompt from the base model in one batch that shares the prompt's KV cache.");
        model.AddTo(command);
        foreach (var o in (Option[])[prompt, n, maxTokens, seed, temperature, topK, topP, .. outputs.All, json]) command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            // Validate the cheap things before loading anything.
            var options = outputs.Apply(new GenerationOptions
            {
                Samples = parse.GetValue(n),
                MaxTokens = parse.GetValue(maxTokens),
                Seed = parse.GetValue(seed),
                Sampling = new SamplingParameters(parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(topP)),
            }, parse);
            var context = new ContextSettings(model.GetThreads(parse));
            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            string text = console.CheckPrompt(parse.GetValue(prompt)!);
            bool asJson = parse.GetValue(json);

            bool streamOne = !asJson && options.Samples == 1;
            var finished = new AlignedSample?[options.Samples];
            var partial = Enumerable.Range(0, options.Samples).Select(_ => new StringBuilder()).ToArray();
            var partialTokens = new int[options.Samples];
            if (streamOne) await console.Out.WriteAsync(text);
            try
            {
                var request = new DecodingRequest { Prompt = text, Options = options };
                await foreach (var e in DecodingEngine.StreamOnOwnEngine(lm, kernels, request, context, cancellationToken))
                {
                    switch (e)
                    {
                        case TextAccepted t:
                            partial[t.Sample].Append(t.TextDelta);
                            partialTokens[t.Sample] += t.Tokens.Count;
                            if (streamOne) await console.Out.WriteAsync(t.TextDelta);
                            break;
                        case SampleCompleted { Result: var f }:
                            finished[f.Index] = f;
                            if (streamOne) await console.Out.WriteLineAsync($"{Environment.NewLine}[logprob {f.LogProb:F3}, {f.Tokens.Count} tokens, {Finish(f)}]");
                            break;
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C: what was decoded is the user's; print it (marked cancelled), then exit 130.
                if (streamOne)
                {
                    await console.Out.WriteLineAsync($"{Environment.NewLine}[cancelled after {partialTokens[0]} tokens]");
                }
                else
                {
                    for (int i = 0; i < options.Samples; i++)
                    {
                        if (finished[i] is { } done) await WriteSample(console, done, text, asJson, lm);
                        else await WritePartial(console, i, text + partial[i], partial[i].ToString(), partialTokens[i], asJson);
                    }
                }
                await console.Out.FlushAsync(CancellationToken.None);
                console.Error.WriteLine($"cancelled: {finished.Count(f => f is not null)} of {options.Samples} samples had finished; the others are printed as far as they got");
                return CliConsole.CancelledExitCode;
            }

            if (!streamOne)
            {
                foreach (var sample in finished) await WriteSample(console, sample!, text, asJson, lm);
            }
            if (!asJson) WriteTimings(console, finished!);
            return 0;
        }));
        return command;
    }

    private static string Finish(AlignedSample s) => s.Finish.ToString().ToLowerInvariant();


    private static async Task WriteSample(CliConsole console, AlignedSample s, string prompt, bool asJson, Tilt.Engine.Models.ILanguageModel model)
    {
        if (asJson)
        {
            await console.Out.WriteLineAsync(JsonSerializer.Serialize(new SampleJson(s.Index, s.Text, s.Tokens, s.LogProb, s.SamplerLogProb, Finish(s))
            {
                TokenLogprobs = CliJson.TokenLogprobs(model, s.TokenLogProbs),
            }, CliJson.Options));
            return;
        }
        await console.Out.WriteLineAsync($"--- sample {s.Index} (logprob {s.LogProb:F3}, {s.Tokens.Count} tokens, {Finish(s)})");
        await console.Out.WriteLineAsync(prompt + s.Text);
    }

    private static async Task WritePartial(CliConsole console, int index, string full, string text, int tokens, bool asJson)
    {
        if (asJson)
        {
            await console.Out.WriteLineAsync(JsonSerializer.Serialize(new PartialJson(index, text, tokens, "cancelled"), CliJson.Options));
            return;
        }
        await console.Out.WriteLineAsync($"--- sample {index} ({tokens} tokens, cancelled)");
        await console.Out.WriteLineAsync(full);
    }

    /// <summary>One line for all samples: they were decoded together, one step per token of the longest.</summary>
    private static void WriteTimings(CliConsole console, AlignedSample[] samples)
    {
        int generated = samples.Sum(s => s.Tokens.Count), steps = samples.Max(s => s.Tokens.Count);
        var prefill = samples[0].Timings.Prefill;
        var decode = samples.Max(s => s.Timings.Total) - prefill;
        double perSecond = decode > TimeSpan.Zero ? generated / decode.TotalSeconds : 0;
        console.Error.WriteLine($"[{generated} tokens in {steps} steps, prefill {prefill.TotalMilliseconds:F1} ms, decode {decode.TotalMilliseconds:F1} ms, {perSecond:F0} tokens/s]");
    }

    private sealed record PartialJson(int Index, string Text, int TokenCount, string Finish);

    private sealed record SampleJson(int Index, string Text, IReadOnlyList<int> Tokens, double Logprob, double SamplerLogprob, string Finish)
    {
        [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
        public object? TokenLogprobs { get; init; }
    }
}
