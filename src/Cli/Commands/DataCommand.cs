namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt data pairs</c> and <c>tilt data labels</c>: demo datasets for reward heads, sampled from the base model and
/// labeled by a reward (optionally with Bradley-Terry label noise), written as JSON lines.
/// </summary>
internal static class DataCommand
{
    public static Command Create(CliConsole console)
    {
        var command = new Command("data", "Make datasets for reward heads from the base model and a reward.");
        command.Subcommands.Add(Make(console, pairs: true));
        command.Subcommands.Add(Make(console, pairs: false));
        return command;
    }

    private static Command Make(CliConsole console, bool pairs)
    {
        var model = new ModelOptions();
        var reward = new Option<string>("--reward", "-r") { Description = "Reward spec that labels the data.", Required = true };
        var n = new Option<int>("--n", "-n") { Description = pairs ? "Pairs to write." : "Labeled texts to write.", DefaultValueFactory = _ => 1000 };
        var noise = new Option<string>("--noise")
        {
            Description = pairs
                ? "none (the higher reward is chosen; ties are skipped) or bt (y1 chosen with probability sigmoid((r1 - r2) / scale))."
                : "none (label = r > threshold) or bt (positive with probability sigmoid((r - threshold) / scale)).",
            DefaultValueFactory = _ => "none",
        };
        var scale = new Option<double>("--scale") { Description = "Scale of Bradley-Terry noise in reward units (larger = noisier).", DefaultValueFactory = _ => 1.0 };
        var threshold = new Option<double>("--threshold") { Description = "Labels: reward above which a text is positive.", DefaultValueFactory = _ => 0.0 };
        var prompt = new Option<string[]>("--prompt", "-p") { Description = "A prompt (repeat for several); default: built-in story openings." };
        var prompts = new Option<string?>("--prompts") { Description = "Prompt file: one per line, or JSON lines with a \"prompt\" field." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens per text at most.", DefaultValueFactory = _ => 64 };
        var temperature = new Option<float>("--temperature", "-t") { Description = "Sampling temperature.", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the sampling and of the label noise.", DefaultValueFactory = _ => 0UL };
        var output = new Option<string>("--out", "-o") { Description = "JSON-lines file to write.", Required = true };

        var command = pairs
            ? new Command("pairs", "Sample pairs of continuations and label chosen/rejected by a reward: {\"prompt\", \"chosen\", \"rejected\", \"chosenReward\", \"rejectedReward\"} per line.")
            : new Command("labels", "Sample continuations and label them by a reward threshold: {\"prompt\", \"text\", \"label\", \"reward\"} per line.");
        model.AddTo(command);
        foreach (var o in new Option[] { reward, n, noise, scale, threshold, prompt, prompts, maxTokens, temperature, seed, output })
        {
            if (pairs && o == threshold) continue;
            command.Options.Add(o);
        }

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            await Task.Yield();
            var labelNoise = parse.GetValue(noise)!.ToLowerInvariant() switch
            {
                "none" => LabelNoise.None,
                "bt" or "bradley-terry" => LabelNoise.BradleyTerry,
                var x => throw new ArgumentException($"--noise must be none or bt, got '{x}'"),
            };
            var options = new PairOptions
            {
                Count = parse.GetValue(n),
                MaxTokens = parse.GetValue(maxTokens),
                Noise = labelNoise,
                Scale = parse.GetValue(scale),
                Threshold = pairs ? 0 : parse.GetValue(threshold),
                Seed = parse.GetValue(seed),
                Sampling = new SamplingParameters(parse.GetValue(temperature)),
                Threads = model.GetThreads(parse),
            };
            options.Sampling.Validate();
            string outPath = AtomicFile.CheckTarget(parse.GetValue(output)!);

            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            var rewardFn = RewardSpec.Parse(parse.GetValue(reward)!, new RewardSpecContext { HeadRewardFactory = path => HeadReward.Load(path, lm.Info) });
            var promptList = TrainCommand.Prompts(parse.GetValue(prompt)?.Select(p => console.CheckPrompt(p)).ToArray(), parse.GetValue(prompts), lm.Info);
            var generator = new PairGenerator(lm, kernels, rewardFn);
            var progress = new ProgressPrinter(console.Error);
            console.Error.WriteLine($"data {(pairs ? "pairs" : "labels")}: {options.Count} from {promptList.Count} prompts, labeled by {rewardFn.Description}" +
                                    (labelNoise == LabelNoise.BradleyTerry ? $" with Bradley-Terry noise (scale {options.Scale.ToString(CultureInfo.InvariantCulture)})" : ""));
            if (pairs)
            {
                var data = generator.GeneratePairs(promptList, options, progress, cancellationToken);
                PreferenceData.WriteLines(outPath, data);
                int flipped = data.Count(p => p.ChosenReward < p.RejectedReward);
                await console.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"wrote {data.Count} pairs to {outPath}: mean reward chosen {data.Average(p => p.ChosenReward):F3}, rejected {data.Average(p => p.RejectedReward):F3}; " +
                    $"{flipped} ({100.0 * flipped / data.Count:F1}%) chosen with the lower reward"));
            }
            else
            {
                var data = generator.GenerateLabels(promptList, options, progress, cancellationToken);
                PreferenceData.WriteLines(outPath, data);
                int positive = data.Count(x => x.Label);
                await console.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"wrote {data.Count} labeled texts to {outPath}: {positive} ({100.0 * positive / data.Count:F1}%) positive, mean reward {data.Average(x => x.Reward):F3}"));
            }
            return 0;
        }));
        return command;
    }
}
