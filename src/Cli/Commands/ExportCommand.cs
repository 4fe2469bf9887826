using System.Text.Json.Nodes;

namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt export</c>: best-of-n (or blockwise, or early-rejection) data for distillation [M25] and filtered data
/// generation. Every prompt runs through ONE <see cref="DecodingEngine"/> concurrently; each finished prompt is appended
/// to the JSONL file as one whole line and flushed, so the file is always a valid prefix of the export, and a rerun with
/// the same settings skips the prompts already in it (docs/export.md).
/// </summary>
internal static class ExportCommand
{
    /// <summary>The strategies with candidates or blocks to export (token-wise CD has neither).</summary>
    private static readonly DecodingStrategy[] Exported = [DecodingStrategy.BestOfN, DecodingStrategy.SoftBestOfN, DecodingStrategy.Blockwise, DecodingStrategy.Beam, DecodingStrategy.Rejection];

    // Strategies that choose block by block: the line lists every step's scored blocks instead of whole candidates.
    private static bool ByBlocks(DecodingStrategy strategy) => strategy is DecodingStrategy.Blockwise or DecodingStrategy.Beam;

    public static Command Create(CliConsole console)
    {
        var model = new ModelOptions();
        var prompts = new Option<string>("--prompts") { Description = "Prompt file (.txt lines or .jsonl {\"prompt\"}).", Required = true };
        var strategy = new Option<string>("--strategy", "-s") { Description = "bon | soft-bon | blockwise | beam | rejection.", DefaultValueFactory = _ => "bon" };
        var reward = new Option<string>("--reward", "-r") { Description = "Reward spec (as in align).", DefaultValueFactory = _ => "lexicon:sentiment" };
        var valueHead = new Option<string?>("--value-head") { Description = "Blockwise/beam/rejection: a trained value head (default: the reward on the prefix)." };
        var value = new Option<string?>("--value") { Description = "Blockwise/rejection: dpo:POLICY,REF[,beta=B] (token-level DPO value)." };
        var fields = new StrategyFlags();
        var temperature = new Option<float>("--temperature", "-t") { Description = "Temperature of the base proposals.", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "RNG seed (prompt i draws with request id i).", DefaultValueFactory = _ => 0UL };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Generated tokens per candidate at most.", DefaultValueFactory = _ => 64 };
        var minReward = new Option<double?>("--min-reward") { Description = "Keep only prompts whose winner's reward is at least this (others are written as 'filtered' lines)." };
        var output = new Option<string>("--out", "-o") { Description = "The JSONL file (appended; a rerun with the same settings resumes).", Required = true };
        var maxSequences = new Option<int>("--max-sequences") { Description = $"Sequences the engine decodes together over all prompts (1..{SessionOptions.MaxSupportedSequences}).", DefaultValueFactory = _ => 64 };
        var f32 = new Option<bool>("--kv-f32")
        {
            Description = "F32 KV cache: candidates independent of what shares the batch, so a resumed export is bit-identical to a fresh one (recorded in the header).",
        };

        var command = new Command("export", "Write best-of-n / blockwise / rejection candidates with rewards, base log-probs, ranks and KL as JSONL (distillation data).");
        model.AddTo(command);
        foreach (var o in (Option[])[prompts, strategy, reward, valueHead, value, .. fields.CandidateFields, fields.Beams, temperature, seed, maxTokens, minReward, output, maxSequences, f32])
            command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            var entry = StrategyFlags.ParseStrategy(parse.GetValue(strategy), Exported);
            // Every candidate is exported, so the pool strategies always return them.
            var strategySpec = fields.Spec(parse, entry.Strategy) with { ReturnCandidates = true, Samples = 1 };
            var options = StrategyFlags.Build(strategySpec, new StrategyLimits { MaxTokens = parse.GetValue(maxTokens) }) with
            {
                MaxTokens = parse.GetValue(maxTokens), Seed = parse.GetValue(seed), Sampling = new SamplingParameters(parse.GetValue(temperature)),
            };
            if (parse.GetValue(minReward) is { } floor && !double.IsFinite(floor)) throw new ArgumentException($"--min-reward must be a finite number, got {floor}");
            int sequences = parse.GetValue(maxSequences);
            if (sequences is < 1 or > SessionOptions.MaxSupportedSequences)
                throw new ArgumentException($"--max-sequences must be 1..{SessionOptions.MaxSupportedSequences}, got {sequences}");
            var kv = parse.GetValue(f32) ? KvCacheType.F32 : KvCacheType.F16;
            string outPath = AtomicFile.CheckTarget(parse.GetValue(output)!);
            var promptSet = PromptSet.Load(parse.GetValue(prompts)!);

            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            var rewardFn = RewardSpec.Parse(parse.GetValue(reward)!, new RewardSpecContext { HeadRewardFactory = path => HeadReward.Load(path, lm.Info) });
            IValueFunction? valueFn = (parse.GetValue(valueHead), parse.GetValue(value)) switch
            {
                ({ }, { }) => throw new ArgumentException("give either --value-head or --value, not both"),
                ({ } head, null) => HeadValue.Load(head, lm.Info),
                (null, { } spec) when spec.StartsWith("dpo:", StringComparison.Ordinal) => new DpoValue(DpoModels.Parse(spec["dpo:".Length..], Path.GetFullPath)),
                (null, { } spec) => throw new ArgumentException($"--value must be dpo:POLICY,REF[,beta=B], got '{spec}'"),
                _ => null,
            };
            if (!entry.ReadsValue && valueFn is not null) throw new ArgumentException("--value-head / --value are for blockwise and rejection; best-of-n ranks by the reward");

            var settings = Settings(entry, options, rewardFn, valueFn, parse.GetValue(minReward), lm.Info, kv);
            var export = ExportFile.Open(outPath, settings, lm.Info, promptSet);
            var todo = Enumerable.Range(0, promptSet.Count).Where(i => !export.Done.Contains(i)).ToList();
            console.Error.WriteLine($"export: {promptSet.Count} prompts ({promptSet.Count - todo.Count} already in {outPath}), strategy {entry.Name}");

            int need = options switch { CandidatePoolOptions b => b.N, RejectionOptions j => j.N, BlockwiseOptions b => b.K + 1, BeamOptions b => b.K + 1, _ => 1 };
            int longest = todo.Count == 0 ? 1 : todo.Max(i => lm.Tokenize(promptSet[i]).Length) + options.MaxTokens;
            await using var engine = new DecodingEngine(lm, kernels, new EngineOptions
            {
                MaxSequences = Math.Min(SessionOptions.MaxSupportedSequences, Math.Max(sequences, need)),
                KvCacheType = kv,
                MaxSequenceLength = longest + 2,
                MaxQueuedRequests = Math.Max(1, todo.Count),
                Threads = model.GetThreads(parse),
            });
            var clock = Stopwatch.StartNew();
            long candidatesWritten = 0, tokensGenerated = 0;
            int kept = 0, filtered = 0;
            var tasks = todo.Select(async i =>
            {
                var request = new DecodingRequest { Prompt = promptSet[i], Options = options with { RequestId = (uint)i }, Reward = rewardFn, Value = valueFn };
                var scored = new List<CandidatesScored>();
                AlignedSample? result = null;
                await foreach (var e in engine.StreamAsync(request, cancellationToken).ConfigureAwait(false))
                {
                    if (e is CandidatesScored c) scored.Add(c);
                    else if (e is SampleCompleted done) result = done.Result;
                }
                var sample = result ?? throw new TiltException($"prompt {i}: the engine finished without a result");
                double? min = parse.GetValue(minReward);
                string line = min is { } m && !(sample.Reward >= m)
                    ? FilteredLine(i, promptSet[i], sample)
                    : PromptLine(i, promptSet[i], entry.Strategy, sample, scored);
                lock (export)
                {
                    export.Append(line);
                    if (line.Contains("\"type\":\"filtered\"", StringComparison.Ordinal)) filtered++;
                    else kept++;
                    candidatesWritten += Math.Max(1, sample.Candidates.Count);
                    tokensGenerated += sample.TokensEvaluated;
                }
            }).ToArray();
            try
            {
                await Task.WhenAll(tasks).ConfigureAwait(false);
            }
            finally
            {
                export.Dispose();
            }
            double seconds = clock.Elapsed.TotalSeconds;
            console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{kept} prompts kept, {filtered} filtered, {candidatesWritten} candidates in {seconds:F2} s: {todo.Count / Math.Max(seconds, 1e-9):F2} prompts/s, {tokensGenerated / Math.Max(seconds, 1e-9):F0} tokens decoded/s]"));
            console.Out.WriteLine(outPath);
            return 0;
        }));
        return command;
    }

    /// <summary>What must match for a rerun to append to an existing file.</summary>
    private static JsonObject Settings(StrategyEntry strategy, AlignOptions options, IReward reward, IValueFunction? value, double? minReward, ModelInfo model,
        KvCacheType kv)
    {
        var s = new JsonObject
        {
            ["strategy"] = strategy.Name,
            ["reward"] = reward.Description,
            ["value"] = !strategy.ReadsValue ? null : value is HeadValue head ? $"{head.Description}@sha256:{head.WeightsSha256}" : value?.Description ?? $"prefix({reward.Description})",
            ["maxTokens"] = options.MaxTokens,
            ["seed"] = options.Seed,
            ["temperature"] = options.Sampling.Temperature,
            ["minReward"] = minReward,
            ["modelFingerprint"] = model.Fingerprint,
            // An F16 cache rounds differently with what shares the batch, so only an F32 one makes a resume reproduce a
            // fresh run; a resume with the other cache type is refused like any other changed setting.
            ["kvCache"] = kv == KvCacheType.F32 ? "f32" : "f16",
        };
        switch (options)
        {
            case BestOfNOptions b: s["n"] = b.N; break;
            case SoftBestOfNOptions b: s["n"] = b.N; s["lambda"] = b.Lambda; break;
            case RejectionOptions r: s["n"] = r.N; s["alpha"] = r.Alpha; s["every"] = r.Every; if (r.DecideAt is { } at) s["decide_at"] = at; break;
            case BlockwiseOptions b: s["k"] = b.K; s["block"] = b.BlockSize; s["selection"] = b.Selection.ToString().ToLowerInvariant(); break;
            case BeamOptions b: s["beams"] = b.Beams; s["k"] = b.K; s["block"] = b.BlockSize; break;
        }
        return s;
    }

    private static string PromptLine(int index, string prompt, DecodingStrategy strategy, AlignedSample s, IReadOnlyList<CandidatesScored> scored)
    {
        var line = new JsonObject
        {
            ["type"] = "prompt",
            ["promptIndex"] = index,
            ["prompt"] = prompt,
            ["winner"] = new JsonObject
            {
                ["candidate"] = ByBlocks(strategy) ? null : scored.LastOrDefault(c => c.Step == 0)?.Chosen,
                ["text"] = s.Text,
                ["tokens"] = Tokens(s.Tokens),
                ["reward"] = Finite(s.Reward),
                ["logprob"] = Finite(s.LogProb),
                ["finish"] = s.Finish.ToString().ToLowerInvariant(),
            },
            ["kl"] = new JsonObject { ["value"] = Finite(s.Kl.Value), ["method"] = CliJson.Snake(s.Kl.Method), ["band"] = CliJson.Snake(s.Kl.Band) },
            ["klBound"] = s.KlBound is { } b ? new JsonObject { ["value"] = Finite(b.Value), ["method"] = CliJson.Snake(b.Method) } : null,
            ["tokensEvaluated"] = s.TokensEvaluated,
        };
        if (ByBlocks(strategy))
        {
            var blocks = new JsonArray();
            foreach (var c in scored)
                blocks.Add(new JsonObject { ["block"] = c.Step, ["scores"] = new JsonArray(c.Scores.Select(x => (JsonNode?)Finite(x)).ToArray()), ["chosen"] = c.Chosen });
            line["blocks"] = blocks;
        }
        else
        {
            int winner = scored.LastOrDefault(c => c.Step == 0)?.Chosen ?? -1;
            var candidates = new JsonArray();
            foreach (var c in s.Candidates)
            {
                // Rank 1 is the best reward; candidates of equal reward share a rank. Rejected candidates (stopped early, no final
                // reward) rank after every survivor.
                int rank = c.Rejected
                    ? 1 + s.Candidates.Count(o => !o.Rejected)
                    : 1 + s.Candidates.Count(o => !o.Rejected && o.Reward > c.Reward);
                candidates.Add(new JsonObject
                {
                    ["index"] = c.Index,
                    ["text"] = c.Text,
                    ["tokens"] = Tokens(c.Tokens),
                    ["reward"] = c.Rejected ? null : Finite(c.Reward),
                    ["valueAtRejection"] = c.Rejected ? Finite(c.Reward) : null,
                    ["logprob"] = Finite(c.LogProb),
                    ["rank"] = rank,
                    ["winner"] = c.Index == winner,
                    ["finished"] = c.Finished,
                    ["rejected"] = c.Rejected,
                });
            }
            line["candidates"] = candidates;
        }
        return line.ToJsonString(CliJson.Options);
    }

    private static string FilteredLine(int index, string prompt, AlignedSample s) => new JsonObject
    {
        ["type"] = "filtered",
        ["promptIndex"] = index,
        ["prompt"] = prompt,
        ["winnerReward"] = Finite(s.Reward),
    }.ToJsonString(CliJson.Options);

    private static JsonArray Tokens(IReadOnlyList<int> tokens) => new(tokens.Select(t => (JsonNode?)t).ToArray());

    private static double? Finite(double x) => double.IsFinite(x) ? x : null;
}
