using Tilt.Cli.Reports;
using Tilt.Engine.Evaluation;
using Tilt.Engine.Models.Tabular;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt evaluate</c>: the win-rate vs KL sweep, with CSV/JSON, pictures and a Markdown report.</summary>
internal static class EvaluateCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new ModelOptions();
        var reward = new Option<string>("--reward", "-r") { Description = "Evaluation reward spec (text rewards: lexicon, length, regex and their sums).", DefaultValueFactory = _ => "lexicon:sentiment" };
        var valueHead = new Option<string?>("--value-head") { Description = "Value head file for controlled decoding (default: the reward on the prefix)." };
        var value = new Option<string?>("--value") { Description = "Tabular models: exact | exact-soft values by enumeration." };
        var prompts = new Option<string?>("--prompts") { Description = "A number N (the first N built-in story openings) or a prompt file (.txt lines or .jsonl {\"prompt\"})." };
        var quick = new Option<bool>("--quick") { Description = "A small sweep (a few points per method): 8 s on the default model, measured on a 2-core machine busy with other builds." };
        var frontier = new Option<bool>("--frontier") { Description = FrontierHelp };
        var outputs = new Option<int?>("--outputs") { Description = $"Aligned outputs per prompt and point (default 8; --quick 4; --frontier {EvaluationConfig.FrontierOutputsPerPrompt})." };
        var baseSamples = new Option<int>("--base-samples") { Description = $"Base samples per prompt to compare with (2..{EvaluationSettings.MaxBaseSamplesPerPrompt}).", DefaultValueFactory = _ => 64 };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Tokens per output (default 48; --quick 32)." };
        var topK = new Option<int>("--top-k") { Description = "Token-wise CD candidates (0 = vocabulary).", DefaultValueFactory = _ => 16 };
        var seed = new Option<ulong>("--seed") { Description = "RNG seed.", DefaultValueFactory = _ => 0UL };
        var output = new Option<string>("--out", "-o") { Description = "Output folder (re-running with the same settings resumes; other settings are refused).", Required = true };
        var prefills = new Option<string?>("--prefills") { Description = "A file of forced response openings (one per line): reward and win-rate of each strategy by opening length (prefills.md, reward_vs_prefix.png)." };
        var methods = new Option<string?>("--methods") { Description = "Only these strategies of the sweep, comma-separated: bon, soft-bon, blockwise, tokenwise, rejection, beam (default: all)." };
        var force = new Option<bool>("--force") { Description = "Start afresh: remove the points of a folder made with other settings." };
        var shard = new Option<string?>("--shard") { Description = "I/N: run only every N-th point of the sweep, starting at point I (0 <= I < N), into this run's own --out folder." };
        var merge = new Option<string[]>("--merge") { Description = "Combine the points of these evaluation folders (shards) into --out and write one report; folders with other settings are refused.", AllowMultipleArgumentsPerToken = true };

        var command = new Command("evaluate", "Sweep best-of-n, blockwise and token-wise CD; write win-rate vs KL points (CSV, JSON), plots and a report.");
        model.AddTo(command);
        foreach (var o in new Option[] { reward, valueHead, value, prompts, quick, frontier, outputs, baseSamples, maxTokens, topK, seed, output, methods, prefills, force, shard, merge }) command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            bool isQuick = parse.GetValue(quick), isFrontier = parse.GetValue(frontier);
            if (isQuick && isFrontier) throw new ArgumentException("give either --quick or --frontier, not both");
            if (parse.GetValue(merge) is { Length: > 0 } folders)
            {
                if (parse.GetValue(shard) is not null) throw new ArgumentException("--merge combines finished folders; it takes no --shard");
                return Merge(console, folders, parse.GetValue(output)!);
            }
            var (shardIndex, shardCount) = ParseShard(parse.GetValue(shard));
            string folder = AtomicFile.EnsureFolder(parse.GetValue(output)!);
            int outputsPerPrompt = parse.GetValue(outputs) ?? (isQuick ? 4 : isFrontier ? EvaluationConfig.FrontierOutputsPerPrompt : 8);
            int tokens = parse.GetValue(maxTokens) ?? (isQuick ? 32 : 48);
            if (outputsPerPrompt < 1) throw new ArgumentException($"--outputs must be at least 1, got {outputsPerPrompt}");
            if (tokens < 1) throw new ArgumentException($"--max-tokens must be at least 1, got {tokens}");
            if (parse.GetValue(baseSamples) is < 2 or > EvaluationSettings.MaxBaseSamplesPerPrompt)
                throw new ArgumentException($"--base-samples must be 2..{EvaluationSettings.MaxBaseSamplesPerPrompt}, got {parse.GetValue(baseSamples)}");
            if (parse.GetValue(methods) is { } only && MethodNames(only).Count == 0)
                throw new ArgumentException($"--methods names no strategy (got '{only}'); give some of bon, soft-bon, blockwise, tokenwise, rejection, beam, or leave it out for all");

            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            var rewardFn = RewardSpec.Parse(parse.GetValue(reward)!, new RewardSpecContext { HeadRewardFactory = path => HeadReward.Load(path, lm.Info) });
            if (rewardFn.NeedsHiddenState)
                throw new ArgumentException($"--reward {rewardFn.Description} reads hidden states, which the evaluation cannot give base samples; evaluate with a text reward and pass the head as --value-head");
            var promptSet = ResolvePrompts(parse.GetValue(prompts), lm, isQuick);
            int candidates = parse.GetValue(topK);
            Func<double, IValueFunction> valueFor = ValueFactory(lm, rewardFn, parse.GetValue(valueHead), parse.GetValue(value), tokens);
            var settings = new EvaluationSettings
            {
                Prompts = promptSet,
                Reward = rewardFn,
                ValueFor = valueFor,
                OutputsPerPrompt = outputsPerPrompt,
                BaseSamplesPerPrompt = parse.GetValue(baseSamples),
                MaxTokens = tokens,
                Seed = parse.GetValue(seed),
                Threads = model.GetThreads(parse),
            };
            var fullSweep = (isQuick ? EvaluationConfig.QuickSweep(candidates) : isFrontier ? EvaluationConfig.Frontier(candidates) : EvaluationConfig.FullSweep(candidates))
                .Select(c => c.FitTo(tokens))
                .Where(c => parse.GetValue(methods) is not { } only || MethodNames(only).Contains(c.Method)).ToList();
            // Shard I of N takes points I, I + N, I + 2N, ... of the sweep: the shards cover it exactly once together.
            var sweep = fullSweep.Where((_, j) => j % shardCount == shardIndex).ToList();
            ValueHeadWarning.Write(console.Error, parse.GetValue(valueHead), sweep.Select(ValueHeadWarning.DecisionLength));
            if (shardCount > 1) console.Error.WriteLine($"evaluate: shard {shardIndex}/{shardCount}: {sweep.Count} of the sweep's {fullSweep.Count} points");
            if (parse.GetValue(prefills) is { } prefillsFile)
                return await PrefillSweep.RunAsync(console, lm, kernels, settings, sweep, prefillsFile, folder, cancellationToken);
            var cdValue = valueFor(1.0);
            var identity = EvaluationIdentity.Of(settings, lm.Info.Fingerprint, cdValue is HeadValue head ? $"{cdValue.Description}@sha256:{head.WeightsSha256}" : cdValue.Description);
            var store = PointStore.Open(folder, identity, parse.GetValue(force));
            var evaluator = new Evaluator(lm, kernels, settings);
            var todo = sweep.Where(c => !store.Contains(c.Id)).ToList();
            console.Error.WriteLine($"evaluate: {sweep.Count} points ({sweep.Count - todo.Count} already in {folder}), {promptSet.Count} prompts x {outputsPerPrompt} outputs, {tokens} tokens");

            var clock = Stopwatch.StartNew();
            console.Error.WriteLine($"base samples: {settings.BaseSamplesPerPrompt} per prompt ...");
            await evaluator.BaseRewardsAsync(cancellationToken);
            bool cancelled = false;
            for (int i = 0; i < todo.Count; i++)
            {
                var config = todo[i];
                string eta = i == 0 ? "" : $", ETA {TimeSpan.FromSeconds(clock.Elapsed.TotalSeconds / i * (todo.Count - i)):mm\\:ss}";
                console.Error.WriteLine($"[{i + 1}/{todo.Count}] {config.Id}{eta}");
                try
                {
                    var point = await evaluator.EvaluateAsync(config, cancellationToken);
                    store.Add(point);
                    console.Error.WriteLine($"    win-rate {point.WinRate:F3} [{point.WinRateLower:F3}, {point.WinRateUpper:F3}], KL {point.Kl:F3} +- {point.KlStandardError:F3}, reward {point.MeanReward:F2} (base {point.BaseMeanReward:F2}), {point.Seconds:F1} s");
                }
                catch (OperationCanceledException)
                {
                    cancelled = true;
                    console.Error.WriteLine($"cancelled: {store.Points.Count} finished points are kept in {folder}; re-run the same command to resume");
                    break;
                }
            }

            var curves = evaluator.ExactCurves();
            string title = $"{Path.GetFileName(lm.Info.Path)} / {rewardFn.Description}";
            var pictures = store.Points.Count > 0 ? EvaluationPlots.Write(folder, store.Points, curves, title, isFrontier) : [];
            string report = Report(lm, rewardFn, cdValue, settings, sweep, store.Points, curves, pictures, kernels.Name, isQuick ? "quick" : isFrontier ? "frontier" : "full");
            if (isFrontier && store.Points.Count > 0)
            {
                // Token-wise CD samples pi*_beta exactly only with the exact soft value over the whole vocabulary.
                bool exactSoft = parse.GetValue(value) == "exact-soft" && lm is TabularModel && (candidates == 0 || candidates >= lm.Info.VocabularySize);
                var frontierAt = exactSoft
                    ? evaluator.ExactFrontier(store.Points.Where(p => p.Method == EvaluationMethod.Tokenwise).Select(p => p.Beta).Distinct().ToArray())
                    : [];
                var checks = FrontierChecks.Tabular(store.Points, curves.FirstOrDefault(c => c.Name.StartsWith("best-of-n", StringComparison.Ordinal)),
                    exactSoft ? beta => frontierAt.FirstOrDefault(f => f.Parameter == beta) : null);
                var sb = new StringBuilder(report);
                FrontierReport.Append(sb, folder, store.Points, tokens, checks, lm is TabularModel);
                report = sb.ToString();
            }
            AtomicFile.WriteAllText(Path.Combine(folder, "report.md"), report);
            console.Out.WriteLine(Path.Combine(folder, "report.md"));
            return cancelled ? CliConsole.CancelledExitCode : 0;
        }));
        return command;
    }

    /// <summary>--frontier's help: the grid, and how many outputs the measured standard errors call for.</summary>
    internal const string FrontierHelp =
        "The frontier preset: each family swept along its knob so the curves overlap in KL (best-of-n n=1..64; soft best-of-n n=16 over lambda 8..1/128; "
        + "blockwise CD K=2,4,8,16 x M=4,8,16; token-wise CD beta 4..1/16; beam search B=2, K=4,8, M=8; early rejection), 64 outputs per prompt and point "
        + "unless --outputs; the report adds win-rate against best-of-n at the nearest KL, KL bounds and time to first text. How many outputs: measured on stories260K (sentiment, 2 prompts x 64), "
        + "the median point's 95% interval against best-of-n at the nearest KL excludes 1/2 from about 5 outputs per prompt, soft best-of-n and beam search need 60-70, "
        + "and points within 0.05 of best-of-n need 130-500; the report computes this for each run (docs/frontier.md).";

    /// <summary>"I/N" with 0 &lt;= I &lt; N; null = the whole sweep (0/1).</summary>
    private static (int Index, int Count) ParseShard(string? text)
    {
        if (text is null) return (0, 1);
        int slash = text.IndexOf('/');
        if (slash < 0
            || !int.TryParse(text[..slash], NumberStyles.None, CultureInfo.InvariantCulture, out int index)
            || !int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int count)
            || count < 1 || index >= count)
            throw new ArgumentException($"--shard must be I/N with 0 <= I < N (e.g. 0/4 for the first of four shards), got '{text}'");
        return (index, count);
    }

    /// <summary>
    /// evaluate --merge DIR... --out DIR: the points of shard folders into one folder and report. Every folder's
    /// settings.json must equal the first's (the first difference is named); a point in two folders is taken from the first.
    /// </summary>
    private static int Merge(CliConsole console, IReadOnlyList<string> folders, string output)
    {
        var first = PointStore.OpenExisting(folders[0]);
        var identity = EvaluationIdentity.Read(Path.Combine(Path.GetFullPath(folders[0]), EvaluationIdentity.FileName));
        var points = new Dictionary<string, EvaluatedPoint>(StringComparer.Ordinal);
        foreach (var p in first.Points) points.TryAdd(p.Id, p);
        foreach (string folder in folders.Skip(1))
        {
            string settings = Path.Combine(Path.GetFullPath(folder), EvaluationIdentity.FileName);
            if (!File.Exists(settings)) throw new TiltException($"{settings}: not found; {folder} is not an evaluation folder");
            if (EvaluationIdentity.Read(settings).FirstDifference(identity) is { } difference)
                throw new TiltException($"{Path.GetFullPath(folder)}: was evaluated with other settings than {Path.GetFullPath(folders[0])} ({difference.Replace("in the folder", "in " + folders[0]).Replace("in this run", "in " + folder)}); only shards of one sweep can be merged");
            foreach (var p in PointStore.OpenExisting(folder).Points)
            {
                if (!points.TryAdd(p.Id, p)) console.Error.WriteLine($"merge: point {p.Id} is in more than one folder; kept the one from the first");
            }
        }
        string target = AtomicFile.EnsureFolder(output);
        var store = PointStore.Open(target, identity);
        foreach (var p in points.Values) store.Add(p);
        var pictures = store.Points.Count > 0 ? EvaluationPlots.Write(target, store.Points, [], $"merged: {identity.Reward}") : [];
        var sb = new StringBuilder();
        sb.AppendLine("# Win-rate vs KL evaluation (merged)");
        sb.AppendLine();
        sb.AppendLine($"- merged from: {string.Join(", ", folders.Select(f => $"`{Path.GetFullPath(f)}`"))}");
        sb.AppendLine($"- model fingerprint `{identity.Model}`; reward `{identity.Reward}`; value for CD `{identity.Value}`");
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"- prompts: {identity.PromptCount} (sha256 {identity.Prompts}); {identity.OutputsPerPrompt} aligned outputs per prompt and point; {identity.BaseSamplesPerPrompt} base samples per prompt; {identity.MaxTokens} tokens per output; seed {identity.Seed}"));
        sb.AppendLine($"- {store.Points.Count} points; written {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine();
        foreach (string picture in pictures.Where(p => p.EndsWith(".png", StringComparison.Ordinal)))
            sb.AppendLine($"![{picture}]({picture})");
        sb.AppendLine();
        AppendTables(sb, store.Points);
        AtomicFile.WriteAllText(Path.Combine(target, "report.md"), sb.ToString());
        console.Error.WriteLine($"merge: {store.Points.Count} points from {folders.Count} folders into {target}");
        console.Out.WriteLine(Path.Combine(target, "report.md"));
        return 0;
    }

    private static IReadOnlyList<string> ResolvePrompts(string? spec, ILanguageModel model, bool quick)
    {
        if (model is TabularModel)
            return spec is null ? [""] : File.Exists(spec) ? PromptSet.Load(spec) : throw new ArgumentException($"--prompts for a tabular model must be a file, got '{spec}'");
        if (spec is null) return PromptSet.StoryOpenings.Take(quick ? 2 : 4).ToArray();
        if (int.TryParse(spec, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n))
        {
            if (n < 1 || n > PromptSet.StoryOpenings.Count)
                throw new ArgumentException($"--prompts N must be between 1 and {PromptSet.StoryOpenings.Count} (the built-in openings), got {n}");
            return PromptSet.StoryOpenings.Take(n).ToArray();
        }
        return PromptSet.Load(spec);
    }

    private static Func<double, IValueFunction> ValueFactory(ILanguageModel model, IReward reward, string? head, string? exact, int maxTokens)
    {
        if (head is not null && exact is not null) throw new ArgumentException("give either --value-head or --value, not both");
        if (head is not null)
        {
            var loaded = HeadValue.Load(head, model.Info);
            return _ => loaded;
        }
        if (exact is null)
        {
            var prefix = new PrefixRewardValue(reward);
            return _ => prefix;
        }
        if (model is not TabularModel tabular) throw new ArgumentException($"--value {exact} needs a tabular model");
        return exact switch
        {
            "exact" => _ => new TabularExactValue(tabular, reward, maxTokens, ExactValueKind.Expected),
            "exact-soft" => beta => new TabularExactValue(tabular, reward, maxTokens, ExactValueKind.Soft, beta),
            _ => throw new ArgumentException($"--value must be exact or exact-soft, got '{exact}'"),
        };
    }

    private static string Report(ILanguageModel model, IReward reward, IValueFunction value, EvaluationSettings settings, IReadOnlyList<EvaluationConfig> sweep,
        IReadOnlyList<EvaluatedPoint> points, IReadOnlyList<ExactCurve> curves, IReadOnlyList<string> pictures, string kernels, string preset)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Win-rate vs KL evaluation");
        sb.AppendLine();
        sb.AppendLine($"- model: `{Path.GetFileName(model.Info.Path)}` ({model.Info.Description}), fingerprint `{model.Info.Fingerprint}`");
        sb.AppendLine($"- reward: `{reward.Description}`; value for CD: `{value.Description}`");
        sb.AppendLine($"- prompts: {settings.Prompts.Count} ({string.Join("; ", settings.Prompts.Select(p => $"\"{p}\""))}); {settings.OutputsPerPrompt} aligned outputs per prompt and point; {settings.BaseSamplesPerPrompt} base samples per prompt; {settings.MaxTokens} tokens per output");
        sb.AppendLine($"- seed: {settings.Seed}; sweep: {preset} ({sweep.Count} points, {points.Count} finished)");
        sb.AppendLine($"- machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}; step kernels: {kernels}");
        sb.AppendLine($"- written {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine();
        foreach (string picture in pictures.Where(p => p.EndsWith(".png", StringComparison.Ordinal)))
            sb.AppendLine($"![{picture}]({picture})");
        sb.AppendLine();
        AppendTables(sb, points);
        if (curves.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("Exact curves (tabular model, first prompt): " + string.Join("; ", curves.Select(c => $"{c.Name}: {c.Points.Count} points")) + ".");
        }
        return sb.ToString();
    }

    /// <summary>The points table and the pairwise win-rate table (every point against every other on the same prompts).</summary>
    private static void AppendTables(StringBuilder sb, IReadOnlyList<EvaluatedPoint> points)
    {
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine("Win-rate: fraction of (aligned, base) pairs of the same prompt where the aligned output has the higher reward, ties 1/2 [M10], averaged over prompts, 95% interval from DeLong's variance. KL: the mean of each strategy's own estimate (best-of-n: KLhat [M9]; blockwise: per-block KLhat [M19]; token-wise: summed exact per-step drift [M15]) +- its standard error; `exact` columns where the model is tabular. Budget bands [M26]: < 8 fine, 8-15 caution, 15-100 inspect for reward hacking, > 100 unlikely useful.");
        sb.AppendLine();
        sb.AppendLine("| point | win-rate [95% CI] | KL (nats) | KL exact | win-rate exact | mean reward | tokens evaluated / output token | latency ms / output | first text ms | band |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var p in points.OrderBy(p => p.Method).ThenBy(p => p.Kl))
        {
            sb.AppendLine(string.Create(inv, $"| {p.Id} | {p.WinRate:F3} [{p.WinRateLower:F3}, {p.WinRateUpper:F3}] | {p.Kl:F3} +- {p.KlStandardError:F3} | {Fmt(p.KlExact)} | {Fmt(p.WinRateExact)} | {p.MeanReward:F2} (base {p.BaseMeanReward:F2}) | {p.TokensEvaluatedPerOutputToken:F1} | {p.LatencyMsPerOutput:F1} | {p.FirstTextMs:F1} | {KlBudget.Classify(p.Kl)} |"));
        }

        var pairs = PairwiseWinRates.Compute(points);
        if (pairs.Count == 0) return;
        var order = points.Where(p => pairs.Any(x => x.A == p.Id)).OrderBy(p => p.Method).ThenBy(p => p.Kl).Select(p => p.Id).ToArray();
        var table = pairs.ToDictionary(x => (x.A, x.B));
        sb.AppendLine();
        sb.AppendLine("## Aligned against aligned");
        sb.AppendLine();
        sb.AppendLine("Row against column: the win-rate of the row point's outputs over the column point's outputs of the same prompt (ties 1/2) [M10], averaged over prompts, with the 95% interval from DeLong's variance per prompt. Row vs column and column vs row add up to 1. The two points draw with the same seeds, which the interval does not model.");
        sb.AppendLine();
        sb.AppendLine("| A \\ B | " + string.Join(" | ", order) + " |");
        sb.AppendLine("|---|" + string.Concat(order.Select(_ => "---|")));
        foreach (string a in order)
        {
            sb.Append($"| {a} |");
            foreach (string b in order)
                sb.Append(a == b ? " - |" : table.TryGetValue((a, b), out var w) ? string.Create(inv, $" {w.WinRate:F2} [{w.Lower:F2}, {w.Upper:F2}] |") : " |");
            sb.AppendLine();
        }

        static string Fmt(double? x) => x is { } v ? v.ToString("F3", CultureInfo.InvariantCulture) : "";
    }

    private static HashSet<EvaluationMethod> MethodNames(string list) =>
    [
        .. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(m => m.ToLowerInvariant() switch
        {
            "bon" => EvaluationMethod.BestOfN,
            "blockwise" => EvaluationMethod.Blockwise,
            "tokenwise" => EvaluationMethod.Tokenwise,
            "rejection" => EvaluationMethod.Rejection,
            "soft-bon" => EvaluationMethod.SoftBestOfN,
            "beam" => EvaluationMethod.Beam,
            _ => throw new ArgumentException($"--methods: unknown strategy '{m}' (bon, soft-bon, blockwise, tokenwise, rejection, beam)"),
        }),
    ];
}
