namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt train value</c> (CD-FUDGE / CD-Q value heads from rollouts of the base model) and <c>tilt train reward</c>
/// (Bradley-Terry / classifier reward heads from a dataset): progress on stderr, the held-out report on stdout.
/// </summary>
internal static class TrainCommand
{
    public static Command Create(CliConsole console)
    {
        var command = new Command("train", "Train value and reward heads on the model's hidden states (CD-FUDGE, CD-Q, Bradley-Terry, classifier).");
        command.Subcommands.Add(Value(console));
        command.Subcommands.Add(Reward(console));
        return command;
    }

    private static Command Value(CliConsole console)
    {
        var model = new ModelOptions();
        var reward = new Option<string>("--reward", "-r") { Description = "Reward spec the value predicts (e.g. lexicon:sentiment, length:40, head:FILE).", Required = true };
        var method = new Option<string>("--method") { Description = "fudge (regress prefixes on the final reward [M16]) or q (fitted Bellman iteration [M17]).", DefaultValueFactory = _ => "fudge" };
        var head = new Option<string>("--head") { Description = "linear (closed-form ridge) or mlp (two layers, Adam).", DefaultValueFactory = _ => "linear" };
        var units = new Option<int>("--units") { Description = $"mlp: hidden units (1..{HeadHeader.MaxHiddenUnits}).", DefaultValueFactory = _ => 64 };
        var activation = new Option<HeadActivation>("--activation") { Description = "mlp: Relu or Gelu.", DefaultValueFactory = _ => HeadActivation.Relu };
        var epochs = new Option<int>("--epochs") { Description = "mlp: Adam epochs at most (early stopping on validation rollouts).", DefaultValueFactory = _ => 20 };
        var learningRate = new Option<double>("--learning-rate") { Description = "mlp: Adam step size.", DefaultValueFactory = _ => 1e-3 };
        var rollouts = new Option<int>("--rollouts", "-n") { Description = "Continuations to sample from the base model.", DefaultValueFactory = _ => 2000 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens per rollout at most; use the limit you will decode with.", DefaultValueFactory = _ => 128 };
        var prompt = new Option<string[]>("--prompt", "-p") { Description = "A prompt (repeat for several); default: built-in story openings.", AllowMultipleArgumentsPerToken = false };
        var prompts = new Option<string?>("--prompts") { Description = "Prompt file: one per line, or JSON lines with a \"prompt\" field." };
        var batch = new Option<int>("--batch") { Description = "Rollouts of a prompt decoded as one batch (1..256).", DefaultValueFactory = _ => 128 };
        var stride = new Option<int>("--stride") { Description = "Record every s-th prefix (memory: rollouts x max-tokens / s x d floats).", DefaultValueFactory = _ => 1 };
        var temperature = new Option<float>("--temperature", "-t") { Description = "Sampling temperature of the rollouts (1 = the base model, which V* is defined under).", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "q: next tokens per prefix in the Bellman target.", DefaultValueFactory = _ => 8 };
        var iterations = new Option<int>("--iterations") { Description = "q: Bellman iterations.", DefaultValueFactory = _ => 6 };
        var qPrefixes = new Option<int>("--q-prefixes") { Description = "q: training prefixes (each decodes top-k candidates).", DefaultValueFactory = _ => 3000 };
        var heldOut = new Option<double>("--held-out") { Description = "Fraction of rollouts held out for the report.", DefaultValueFactory = _ => 0.2 };
        var alpha = new Option<double?>("--alpha") { Description = "linear: fixed ridge penalty (relative); default: chosen on validation rollouts." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the rollouts, the split and Adam.", DefaultValueFactory = _ => 0UL };
        var output = new Option<string>("--out", "-o") { Description = "Head file to write.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the report as one JSON object." };

        var command = new Command("value", "Train a value head V(prefix) for controlled decoding from rollouts of the base model scored by a reward.");
        model.AddTo(command);
        foreach (var o in new Option[] { reward, method, head, units, activation, epochs, learningRate, rollouts, maxTokens, prompt, prompts, batch, stride, temperature, topK, iterations, qPrefixes, heldOut, alpha, seed, output, json })
            command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            await Task.Yield();
            var valueMethod = parse.GetValue(method)!.ToLowerInvariant() switch
            {
                "fudge" or "cd-fudge" => ValueMethod.Fudge,
                "q" or "cd-q" => ValueMethod.Q,
                var m => throw new ArgumentException($"--method must be fudge or q, got '{m}'"),
            };
            var kind = parse.GetValue(head)!.ToLowerInvariant() switch
            {
                "linear" => HeadKind.Linear,
                "mlp" => HeadKind.Mlp,
                var h => throw new ArgumentException($"--head must be linear or mlp, got '{h}'"),
            };
            // Validate every option before loading the model (each init accessor throws a named error).
            var collection = new RolloutOptions
            {
                Rollouts = parse.GetValue(rollouts),
                MaxTokens = parse.GetValue(maxTokens),
                BatchSize = parse.GetValue(batch),
                PositionStride = parse.GetValue(stride) >= 1 ? parse.GetValue(stride) : throw new ArgumentException($"--stride must be at least 1, got {parse.GetValue(stride)}"),
                Seed = parse.GetValue(seed),
                Sampling = new SamplingParameters(parse.GetValue(temperature)),
                Threads = model.GetThreads(parse),
            };
            var training = new ValueTrainingOptions
            {
                Method = valueMethod,
                Kind = kind,
                Adam = new AdamOptions
                {
                    HiddenUnits = parse.GetValue(units) is >= 1 and <= HeadHeader.MaxHiddenUnits
                        ? parse.GetValue(units)
                        : throw new ArgumentException($"--units must be 1..{HeadHeader.MaxHiddenUnits} (the most a head file holds), got {parse.GetValue(units)}"),
                    Activation = parse.GetValue(activation),
                    Epochs = parse.GetValue(epochs),
                    LearningRate = parse.GetValue(learningRate),
                    Seed = parse.GetValue(seed),
                },
                HeldOutFraction = parse.GetValue(heldOut),
                Alpha = parse.GetValue(alpha),
                QTopK = parse.GetValue(topK),
                QIterations = parse.GetValue(iterations),
                QMaxPrefixes = parse.GetValue(qPrefixes),
                Seed = parse.GetValue(seed),
                Threads = model.GetThreads(parse),
            };
            string outPath = AtomicFile.CheckTarget(parse.GetValue(output)!);

            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            var rewardFn = RewardSpec.Parse(parse.GetValue(reward)!, new RewardSpecContext { HeadRewardFactory = path => HeadReward.Load(path, lm.Info) });
            var promptList = Prompts(parse.GetValue(prompt)?.Select(p => console.CheckPrompt(p)).ToArray(), parse.GetValue(prompts), lm.Info);
            console.Error.WriteLine($"train value: {(valueMethod == ValueMethod.Fudge ? "CD-FUDGE" : "CD-Q")} {kind.ToString().ToLowerInvariant()} head for {rewardFn.Description}; " +
                                    $"{collection.Rollouts} rollouts of at most {collection.MaxTokens} tokens over {promptList.Count} prompts");

            var progress = new ProgressPrinter(console.Error);
            var clock = Stopwatch.StartNew();
            var set = new RolloutCollector(lm, kernels, rewardFn).Collect(promptList, collection, progress, cancellationToken);
            var rolloutTime = clock.Elapsed;
            var result = new ValueTrainer(lm, rewardFn).Train(set, training, progress, cancellationToken);
            var trainTime = clock.Elapsed - rolloutTime;
            progress.Finish();
            result.File.Write(outPath, cancellationToken);

            var r = result.Report;
            if (parse.GetValue(json))
            {
                await console.Out.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    Out = outPath,
                    Method = valueMethod == ValueMethod.Fudge ? "cd-fudge" : "cd-q",
                    Kind = kind.ToString().ToLowerInvariant(),
                    Reward = rewardFn.Description,
                    Rollouts = set.Rollouts.Count,
                    collection.MaxTokens,
                    Prompts = promptList.Count,
                    MeanReward = set.Rollouts.Average(x => x.Reward),
                    r.TrainRollouts,
                    r.ValidationRollouts,
                    r.TrainRows,
                    Alpha = Finite(r.Alpha),
                    HeldOut = new
                    {
                        r.HeldOut.Rollouts,
                        r.HeldOut.Rows,
                        RSquared = Finite(r.HeldOut.RSquared),
                        Mse = Finite(r.HeldOut.MeanSquaredError),
                        ByPrefixLength = r.HeldOut.ByPrefixLength.Select(b => new { b.From, b.To, b.Rows, MeanReward = Finite(b.MeanReward), RSquared = Finite(b.RSquared), Mse = Finite(b.MeanSquaredError), PrefixRewardR2 = Finite(b.PrefixRewardRSquared) }),
                    },
                    QIterations = r.QIterations.Count == 0 ? null : r.QIterations.Select(q => new { q.Iteration, ValidationMse = Finite(q.ValidationMse), BellmanResidual = Finite(q.BellmanResidual) }),
                    QChosenIteration = r.QIterations.Count == 0 ? (int?)null : r.QChosenIteration,
                    Timings = new { RolloutsSeconds = rolloutTime.TotalSeconds, TrainingSeconds = trainTime.TotalSeconds },
                }, CliJson.Options));
                return 0;
            }

            var o = console.Out;
            await o.WriteLineAsync($"{(valueMethod == ValueMethod.Fudge ? "CD-FUDGE" : "CD-Q")} {kind.ToString().ToLowerInvariant()} value head of {rewardFn.Description} -> {outPath}");
            await o.WriteLineAsync($"  model {lm.Info.Description}; d = {lm.Info.HiddenSize}" + (double.IsNaN(r.Alpha) ? "" : $"; ridge alpha {Num(r.Alpha)} (chosen on {r.ValidationRollouts} validation rollouts)"));
            await o.WriteLineAsync($"  {set.Rollouts.Count} rollouts (mean reward {set.Rollouts.Average(x => x.Reward):F3}): trained on {r.TrainRollouts} ({r.TrainRows:N0} prefixes), held out {r.HeldOut.Rollouts} ({r.HeldOut.Rows:N0} prefixes)");
            if (r.QIterations.Count > 0)
            {
                await o.WriteLineAsync($"  CD-Q: {r.QPrefixes} prefixes x top-{training.QTopK}; iteration 0 is the CD-FUDGE start; kept iteration {r.QChosenIteration}");
                await o.WriteLineAsync("    iteration   validation MSE   Bellman residual");
                foreach (var q in r.QIterations)
                    await o.WriteLineAsync($"    {q.Iteration,9}   {Num(q.ValidationMse),14}   {Num(q.BellmanResidual),16}");
            }
            // The last column is the baseline: the prefix reward's corr^2 with the realized reward (align warns below it).
            await o.WriteLineAsync("  held-out R^2 of V(prefix) against the realized reward, by prefix length, beside corr(r(prefix), r)^2:");
            await o.WriteLineAsync("    tokens     prefixes       R^2        MSE  prefix r^2");
            foreach (var b in r.HeldOut.ByPrefixLength)
                await o.WriteLineAsync($"    {(b.From == b.To ? b.From.ToString(CultureInfo.InvariantCulture) : $"{b.From}-{b.To}"),-8} {b.Rows,10:N0} {Num(b.RSquared),9} {Num(b.MeanSquaredError),10} {Num(b.PrefixRewardRSquared),11}");
            await o.WriteLineAsync($"    {"all",-8} {r.HeldOut.Rows,10:N0} {Num(r.HeldOut.RSquared),9} {Num(r.HeldOut.MeanSquaredError),10}");
            await o.WriteLineAsync($"  time: rollouts {rolloutTime.TotalSeconds:F1} s, training {trainTime.TotalSeconds:F1} s");
            return 0;
        }));
        return command;
    }

    private static Command Reward(CliConsole console)
    {
        var model = new ModelOptions();
        var pairs = new Option<string?>("--pairs") { Description = "Preference pairs, JSON lines {\"prompt\", \"chosen\", \"rejected\"}: trains a Bradley-Terry head [M20]." };
        var labels = new Option<string?>("--labels") { Description = "Labeled texts, JSON lines {\"prompt\", \"text\", \"label\"}: trains a classifier head (r = log-odds)." };
        var feature = new Option<string>("--feature") { Description = "last (the hidden state after the text; usable while decoding) or mean (over the text; offline scoring only).", DefaultValueFactory = _ => "last" };
        var heldOut = new Option<double>("--held-out") { Description = "Fraction of examples held out for the report.", DefaultValueFactory = _ => 0.2 };
        var lambda = new Option<double?>("--lambda") { Description = "Fixed L2 penalty; default: chosen on validation examples." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the split.", DefaultValueFactory = _ => 0UL };
        var output = new Option<string>("--out", "-o") { Description = "Head file to write.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the report as one JSON object." };

        var command = new Command("reward", "Train a reward head r(x, y) from preference pairs (Bradley-Terry) or labeled texts (classifier).");
        model.AddTo(command);
        foreach (var o in new Option[] { pairs, labels, feature, heldOut, lambda, seed, output, json }) command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            await Task.Yield();
            string? pairsPath = parse.GetValue(pairs), labelsPath = parse.GetValue(labels);
            if ((pairsPath is null) == (labelsPath is null)) throw new ArgumentException("give exactly one of --pairs FILE or --labels FILE");
            var textFeature = parse.GetValue(feature)!.ToLowerInvariant() switch
            {
                "last" => TextFeature.Last,
                "mean" => TextFeature.Mean,
                var f => throw new ArgumentException($"--feature must be last or mean, got '{f}'"),
            };
            var options = new RewardTrainingOptions
            {
                Feature = textFeature,
                HeldOutFraction = parse.GetValue(heldOut),
                Lambda = parse.GetValue(lambda),
                Seed = parse.GetValue(seed),
                Threads = model.GetThreads(parse),
            };
            string outPath = AtomicFile.CheckTarget(parse.GetValue(output)!);
            // Read the data before loading the model: a bad line is reported at once.
            var pairData = pairsPath is null ? null : PreferenceData.ReadPairs(pairsPath);
            var labelData = labelsPath is null ? null : PreferenceData.ReadLabels(labelsPath);

            using var lm = model.LoadModel(parse, console);
            var progress = new ProgressPrinter(console.Error);
            var trainer = new RewardTrainer(lm);
            string source = Path.GetFullPath((pairsPath ?? labelsPath)!);
            console.Error.WriteLine($"train reward: {(pairData is not null ? $"Bradley-Terry on {pairData.Count} pairs" : $"classifier on {labelData!.Count} labeled texts")} from {source}");
            var result = pairData is not null
                ? trainer.TrainBradleyTerry(pairData, options, source, progress, cancellationToken)
                : trainer.TrainClassifier(labelData!, options, source, progress, cancellationToken);
            progress.Finish();
            result.File!.Write(outPath, cancellationToken);

            var r = result.Report;
            bool bt = r.Method == RewardMethod.BradleyTerry;
            if (parse.GetValue(json))
            {
                await console.Out.WriteLineAsync(JsonSerializer.Serialize(new
                {
                    Out = outPath,
                    Method = bt ? "bradley-terry" : "classifier",
                    Feature = textFeature.ToString().ToLowerInvariant(),
                    Data = source,
                    r.TrainExamples,
                    r.ValidationExamples,
                    r.Lambda,
                    HeldOut = new { r.HeldOut.Examples, Accuracy = Finite(r.HeldOut.Accuracy), LogLoss = Finite(r.HeldOut.LogLoss), PositiveRate = bt ? null : Finite(r.HeldOut.PositiveRate) },
                    Training = new { r.Training.Examples, Accuracy = Finite(r.Training.Accuracy), LogLoss = Finite(r.Training.LogLoss) },
                    Seconds = r.Elapsed.TotalSeconds,
                }, CliJson.Options));
                return 0;
            }
            var o = console.Out;
            string what = bt ? "pairs" : "texts";
            await o.WriteLineAsync($"{(bt ? "Bradley-Terry" : "classifier")} reward head ({textFeature.ToString().ToLowerInvariant()} hidden state) -> {outPath}");
            await o.WriteLineAsync($"  model {lm.Info.Description}; L2 lambda {Num(r.Lambda)}{(r.ValidationExamples > 0 && options.Lambda is null ? $" (chosen on {r.ValidationExamples} validation {what})" : "")}");
            await o.WriteLineAsync($"  trained on {r.TrainExamples + r.ValidationExamples} {what}: accuracy {Num(r.Training.Accuracy)}, log-loss {Num(r.Training.LogLoss)}");
            string majority = bt ? "" : $" (majority guess {Num(Math.Max(r.HeldOut.PositiveRate, 1 - r.HeldOut.PositiveRate))})";
            await o.WriteLineAsync($"  held out {r.HeldOut.Examples} {what}: {(bt ? "pairwise " : "")}accuracy {Num(r.HeldOut.Accuracy)}{majority}, log-loss {Num(r.HeldOut.LogLoss)}");
            if (textFeature == TextFeature.Mean)
                await o.WriteLineAsync("  note: a mean-pooled head scores finished texts offline; decoders (head:FILE) need a 'last' head");
            await o.WriteLineAsync($"  time: {r.Elapsed.TotalSeconds:F1} s");
            return 0;
        }));
        return command;
    }

    /// <summary>--prompt values, else the --prompts file, else the model's default prompts.</summary>
    internal static IReadOnlyList<string> Prompts(string[]? prompt, string? file, ModelInfo model)
    {
        if (prompt is { Length: > 0 } && file is not null) throw new ArgumentException("give --prompt or --prompts, not both");
        if (prompt is { Length: > 0 }) return prompt;
        return file is not null ? PromptSet.Load(file) : PromptSet.Default(model);
    }

    private static string Num(double x) => double.IsFinite(x) ? x.ToString("0.####", CultureInfo.InvariantCulture) : "n/a";

    private static double? Finite(double x) => double.IsFinite(x) ? x : null;
}

/// <summary>
/// Textual progress on stderr: one line per phase each time it passes another 10% (and when it ends), with the elapsed
/// time and an estimate of the time left. Lines, not a redrawn bar, so logs and captured output stay readable.
/// </summary>
internal sealed class ProgressPrinter(TextWriter writer) : IProgress<TrainingProgress>
{
    private readonly Stopwatch _clock = new();
    private string? _phase;
    private int _lastDecile = -1;

    public void Report(TrainingProgress value)
    {
        if (value.Phase != _phase)
        {
            _phase = value.Phase;
            _lastDecile = -1;
            _clock.Restart();
        }
        int decile = (int)Math.Floor(value.Fraction * 10);
        if (decile <= _lastDecile) return;
        _lastDecile = decile;
        double elapsed = _clock.Elapsed.TotalSeconds;
        string eta = value.Fraction is > 0 and < 1 ? $", eta {elapsed / value.Fraction * (1 - value.Fraction):F0} s" : "";
        writer.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {value.Phase,-16} {value.Fraction * 100,3:F0}% [{new string('#', decile).PadRight(10, '.')}] {value.Done:N0}/{value.Total:N0}  {elapsed:F1} s{eta}"));
    }

    public void Finish() => _phase = null;
}
