using Tilt.Engine.Models.Tabular;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt align</c>: best-of-n, token-wise CD or blockwise CD towards a reward.</summary>
internal static class AlignCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new ModelOptions();
        var strategy = new Option<string>("--strategy", "-s") { Description = "bon | soft-bon | tokenwise | blockwise | beam | rejection.", DefaultValueFactory = _ => "blockwise" };
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text.", DefaultValueFactory = _ => "Once upon a time" };
        var reward = new Option<string>("--reward", "-r")
        {
            Description = "Reward spec, e.g. lexicon:sentiment, length:40, regex:PATTERN, head:FILE, 0.7*lexicon:a.txt+0.3*length:40, min(A;B).",
            DefaultValueFactory = _ => "lexicon:sentiment",
        };
        var valueHead = new Option<string?>("--value-head") { Description = "Trained value head file (tilt-head/1) for CD; default: the reward applied to the prefix." };
        var value = new Option<string?>("--value") { Description = "exact (V* = E[r] by enumeration [M13]) or exact-soft (beta log E[exp(r/beta)]) on tabular models; dpo:POLICY,REF[,beta=B] (token-level DPO log-ratio [M23])." };
        var fields = new StrategyFlags();
        var temperature = new Option<float>("--temperature", "-t") { Description = "Temperature of the base proposals.", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "RNG seed.", DefaultValueFactory = _ => 0UL };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Generated tokens per output at most.", DefaultValueFactory = _ => 128 };
        var prefill = new Option<string?>("--prefill") { Description = "Force the response to start with this text (not sampled, excluded from KL, seen by the reward): how deep is the alignment?" };
        var outputs = new OutputFlags();
        var json = new Option<bool>("--json") { Description = "One JSON object per output." };
        var requests = new Option<string?>("--requests") { Description = "Batch mode: a JSONL file of requests (prompt, strategy, n, k, block, beta, top_k, seed, max_tokens, reward, value_head, ...); absent fields take this command's options. " +
                $"At most {AlignBatch.MaxRequestLines} lines; every line is parsed and queued first, and decoding takes about as long as running them in batches of --max-sequences." };
        var output = new Option<string?>("--out", "-o") { Description = "Batch mode: the JSONL file of results (one object per output, in input order, with 'line')." };
        var concurrency = new Option<int>("--concurrency") { Description = "Batch mode: requests running at once (0 = as many as fit; 1 = one at a time).", DefaultValueFactory = _ => 0 };
        var maxSequences = new Option<int>("--max-sequences") { Description = "Batch mode: sequences the engine decodes together over all requests (1..256).", DefaultValueFactory = _ => 64 };

        var command = new Command("align", "Sample from an aligned policy: best-of-n, token-wise or blockwise controlled decoding towards a reward.");
        model.AddTo(command);
        foreach (var o in (Option[])[strategy, prompt, reward, valueHead, value, .. fields.All, temperature, seed, maxTokens, prefill, .. outputs.All, json, requests, output, concurrency, maxSequences])
            command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            if (parse.GetValue(requests) is { } requestsFile)
            {
                string outFile = parse.GetValue(output) ?? throw new ArgumentException("--requests needs --out FILE.jsonl for the results");
                if (parse.GetValue(value) is not null) throw new ArgumentException("--value (exact tabular values) is not available in batch mode");
                // A line without a strategy takes --strategy, parsed (and refused when wrong) only for such a line.
                var lineFields = fields.Spec(parse, StrategyCatalog.Find(parse.GetValue(strategy))?.Strategy ?? DecodingStrategy.Blockwise);
                var defaults = new AlignBatch.Defaults(parse.GetValue(strategy)!, parse.GetValue(prompt)!, parse.GetValue(reward)!, parse.GetValue(valueHead), lineFields,
                    parse.GetValue(temperature), parse.GetValue(seed), parse.GetValue(maxTokens), outputs.Stops(parse));
                var engineOptions = new Tilt.Engine.Decoding.EngineOptions { MaxSequences = parse.GetValue(maxSequences) };
                using var batchModel = model.LoadModel(parse, console);
                using var batchKernels = model.CreateKernels(parse, console);
                return await AlignBatch.RunAsync(console, batchModel, batchKernels, requestsFile, outFile, defaults, parse.GetValue(concurrency),
                    engineOptions.MaxSequences, model.GetThreads(parse), cancellationToken);
            }
            if (parse.GetValue(output) is not null) throw new ArgumentException("--out is for batch mode (--requests FILE.jsonl)");
            var entry = StrategyFlags.ParseStrategy(parse.GetValue(strategy));

            // Validate every option before loading the model: the catalogue names a bad field by its flag.
            var options = outputs.Apply(StrategyFlags.Build(fields.Spec(parse, entry.Strategy), new StrategyLimits { MaxTokens = parse.GetValue(maxTokens) }) with
            {
                MaxTokens = parse.GetValue(maxTokens),
                Seed = parse.GetValue(seed),
                Sampling = new SamplingParameters(parse.GetValue(temperature)),
            }, parse);
            var context = new ContextSettings(model.GetThreads(parse));

            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            var rewardFn = RewardSpec.Parse(parse.GetValue(reward)!, new RewardSpecContext
            {
                HeadRewardFactory = path => HeadReward.Load(path, lm.Info),
            });
            var valueFn = CreateValue(lm, rewardFn, parse.GetValue(valueHead), parse.GetValue(value), options);
            ValueHeadWarning.Write(console.Error, parse.GetValue(valueHead), [ValueHeadWarning.DecisionLength(options)]);
            string text = console.CheckPrompt(parse.GetValue(prompt)!);
            bool asJson = parse.GetValue(json);

            // One request on an engine sized for it; the options' type is the strategy.
            var events = DecodingEngine.StreamOnOwnEngine(lm, kernels,
                new DecodingRequest
                {
                    Prompt = text, Options = options, Reward = rewardFn, Value = entry.ReadsValue ? valueFn : null,
                    ForcedPrefix = parse.GetValue(prefill),
                }, context, cancellationToken);

            bool streamText = !asJson && options.Samples == 1;
            if (streamText) await console.Out.WriteAsync(text);
            await foreach (var e in events)
            {
                switch (e)
                {
                    case TextAccepted accepted when streamText:
                        await console.Out.WriteAsync(accepted.TextDelta);
                        break;
                    case SampleCompleted done when asJson:
                        await console.Out.WriteLineAsync(JsonSerializer.Serialize(ToJson(done.Result, entry, rewardFn, valueFn, lm), CliJson.Options));
                        break;
                    case SampleCompleted done:
                        if (streamText) await console.Out.WriteLineAsync();
                        else await console.Out.WriteLineAsync($"--- output {done.Result.Index}{Environment.NewLine}{text}{done.Result.Text}");
                        await console.Out.WriteLineAsync(Summary(done.Result));
                        foreach (var c in done.Result.Candidates)
                            await console.Out.WriteLineAsync($"    candidate {c.Index}: reward {c.Reward:F3}, logprob {c.LogProb:F2}: {c.Text.ReplaceLineEndings(" ")}");
                        break;
                }
            }
            return 0;
        }));
        return command;
    }

    private static IValueFunction CreateValue(ILanguageModel model, IReward reward, string? headPath, string? exact, AlignOptions options)
    {
        if (headPath is not null && exact is not null)
            throw new ArgumentException("give either --value-head or --value, not both");
        if (headPath is not null) return HeadValue.Load(headPath, model.Info);
        if (exact is null) return new PrefixRewardValue(reward);
        if (exact.StartsWith("dpo:", StringComparison.Ordinal))
            return new DpoValue(DpoModels.Parse(exact["dpo:".Length..], Path.GetFullPath));
        if (model is not TabularModel tabular)
            throw new ArgumentException($"--value {exact} needs a tabular model (it enumerates every continuation); use --value-head for GGUF models");
        double beta = options switch { TokenwiseOptions t => t.Beta, BlockwiseOptions b => b.Beta, _ => 1.0 };
        return exact switch
        {
            "exact" => new TabularExactValue(tabular, reward, options.MaxTokens, ExactValueKind.Expected),
            "exact-soft" => new TabularExactValue(tabular, reward, options.MaxTokens, ExactValueKind.Soft, beta),
            _ => throw new ArgumentException($"--value must be exact, exact-soft or dpo:POLICY,REF[,beta=B], got '{exact}'"),
        };
    }

    private static string Summary(AlignedSample s)
    {
        string bound = s.KlBound is { } b ? $", bound {b.Value:F3}" : "";
        string winRate = s.WinRateVsCandidates is { } w ? $", beats {w:P0} of the other candidates" : "";
        string partial = s.IsPartial ? " [PARTIAL: deadline]" : "";
        return $"[reward {s.Reward:F3}, logprob {s.LogProb:F2}, KL {s.Kl.Value:F3} ({KlName(s.Kl.Method)}{bound}; {KlBudget.Describe(s.Kl.Band)}){winRate}, " +
               $"{s.Tokens.Count} tokens ({s.Finish.ToString().ToLowerInvariant()}), {s.TokensEvaluated} evaluated, " +
               $"prefill {s.Timings.Prefill.TotalMilliseconds:F0} ms, first text {s.Timings.FirstAccepted.TotalMilliseconds:F0} ms, total {s.Timings.Total.TotalMilliseconds:F0} ms]{partial}";
    }

    private static string KlName(KlMethod method) => method switch
    {
        KlMethod.BestOfNEstimate => "best-of-n estimate [M9]",
        KlMethod.BestOfNBound => "best-of-n bound [M7]",
        KlMethod.SoftBestOfNEstimate => "soft best-of-n selection KL, an upper estimate [M27]",
        KlMethod.StepDriftSum => "sum of per-step drift [M15]",
        KlMethod.BlockEstimate => "per-block estimate [M19]",
        KlMethod.BlockBound => "per-block bound [M19]",
        _ => method.ToString(),
    };

    private static SampleJson ToJson(AlignedSample s, StrategyEntry strategy, IReward reward, IValueFunction value, ILanguageModel model) =>
        CliJson.Sample(s, strategy.Name, reward.Description, strategy.ReadsValue ? value.Description : null, model);
}
