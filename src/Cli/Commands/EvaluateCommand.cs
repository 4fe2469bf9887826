using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Tilt.Cli.Reports;
using Tilt.Engine;
using Tilt.Engine.Evaluation;
using Tilt.Engine.Heads;
using Tilt.Engine.IO;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Engine.Training;
using Tilt.Engine.Values;

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
        var quick = new Option<bool>("--quick") { Description = "A small sweep (a few points per method), about a minute on the default model." };
        var outputs = new Option<int?>("--outputs") { Description = "Aligned outputs per prompt and point (default 8; --quick 4)." };
        var baseSamples = new Option<int>("--base-samples") { Description = "Base samples per prompt to compare with.", DefaultValueFactory = _ => 64 };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Tokens per output (default 48; --quick 32)." };
        var topK = new Option<int>("--top-k") { Description = "Token-wise CD candidates (0 = vocabulary).", DefaultValueFactory = _ => 16 };
        var seed = new Option<ulong>("--seed") { Description = "RNG seed.", DefaultValueFactory = _ => 0UL };
        var output = new Option<string>("--out", "-o") { Description = "Output folder (re-running with the same settings resumes; other settings are refused).", Required = true };
        var prefills = new Option<string?>("--prefills") { Description = "A file of forced response openings (one per line): reward and win-rate of each strategy by opening length (prefills.md, reward_vs_prefix.png)." };
        var methods = new Option<string?>("--methods") { Description = "Only these strategies of the sweep, comma-separated: bon, blockwise, tokenwise, rejection (default: all)." };
        var force = new Option<bool>("--force") { Description = "Start afresh: remove the points of a folder made with other settings." };

        var command = new Command("evaluate", "Sweep best-of-n, blockwise and token-wise CD; write win-rate vs KL points (CSV, JSON), plots and a report.");
        model.AddTo(command);
        foreach (var o in new Option[] { reward, valueHead, value, prompts, quick, outputs, baseSamples, maxTokens, topK, seed, output, methods, prefills, force }) command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            bool isQuick = parse.GetValue(quick);
            string folder = AtomicFile.EnsureFolder(parse.GetValue(output)!);
            int outputsPerPrompt = parse.GetValue(outputs) ?? (isQuick ? 4 : 8);
            int tokens = parse.GetValue(maxTokens) ?? (isQuick ? 32 : 48);
            if (outputsPerPrompt < 1) throw new ArgumentException($"--outputs must be at least 1, got {outputsPerPrompt}");
            if (tokens < 1) throw new ArgumentException($"--max-tokens must be at least 1, got {tokens}");
            if (parse.GetValue(baseSamples) < 2) throw new ArgumentException($"--base-samples must be at least 2, got {parse.GetValue(baseSamples)}");

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
            // Rejection decides every 8 tokens; for shorter outputs, four decisions over the output instead.
            var sweep = (isQuick ? EvaluationConfig.QuickSweep(candidates) : EvaluationConfig.FullSweep(candidates))
                .Select(c => c.Method == EvaluationMethod.Rejection && c.M >= tokens ? c with { M = Math.Max(1, tokens / 4) } : c)
                .Where(c => parse.GetValue(methods) is not { } only || MethodNames(only).Contains(c.Method)).ToList();
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
            var pictures = store.Points.Count > 0 ? EvaluationPlots.Write(folder, store.Points, curves, title) : [];
            AtomicFile.WriteAllText(Path.Combine(folder, "report.md"), Report(lm, rewardFn, cdValue, settings, sweep, store.Points, curves, pictures, kernels.Name, isQuick));
            console.Out.WriteLine(Path.Combine(folder, "report.md"));
            return cancelled ? CliConsole.CancelledExitCode : 0;
        }));
        return command;
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
        IReadOnlyList<EvaluatedPoint> points, IReadOnlyList<ExactCurve> curves, IReadOnlyList<string> pictures, string kernels, bool quick)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine("# Win-rate vs KL evaluation");
        sb.AppendLine();
        sb.AppendLine($"- model: `{Path.GetFileName(model.Info.Path)}` ({model.Info.Description}), fingerprint `{model.Info.Fingerprint}`");
        sb.AppendLine($"- reward: `{reward.Description}`; value for CD: `{value.Description}`");
        sb.AppendLine($"- prompts: {settings.Prompts.Count} ({string.Join("; ", settings.Prompts.Select(p => $"\"{p}\""))}); {settings.OutputsPerPrompt} aligned outputs per prompt and point; {settings.BaseSamplesPerPrompt} base samples per prompt; {settings.MaxTokens} tokens per output");
        sb.AppendLine($"- seed: {settings.Seed}; sweep: {(quick ? "quick" : "full")} ({sweep.Count} points, {points.Count} finished)");
        sb.AppendLine($"- machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}; step kernels: {kernels}");
        sb.AppendLine($"- written {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine();
        foreach (string picture in pictures.Where(p => p.EndsWith(".png", StringComparison.Ordinal)))
            sb.AppendLine($"![{picture}]({picture})");
        sb.AppendLine();
        sb.AppendLine("Win-rate: fraction of (aligned, base) pairs of the same prompt where the aligned output has the higher reward, ties 1/2 [M10], averaged over prompts, 95% interval from DeLong's variance. KL: the mean of each strategy's own estimate (best-of-n: KLhat [M9]; blockwise: per-block KLhat [M19]; token-wise: summed exact per-step drift [M15]) +- its standard error; `exact` columns where the model is tabular. Budget bands [M26]: < 8 fine, 8-15 caution, 15-100 inspect for reward hacking, > 100 unlikely useful.");
        sb.AppendLine();
        sb.AppendLine("| point | win-rate [95% CI] | KL (nats) | KL exact | win-rate exact | mean reward | tokens evaluated / output token | latency ms / output | first text ms | band |");
        sb.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var p in points.OrderBy(p => p.Method).ThenBy(p => p.Kl))
        {
            sb.AppendLine(string.Create(inv, $"| {p.Id} | {p.WinRate:F3} [{p.WinRateLower:F3}, {p.WinRateUpper:F3}] | {p.Kl:F3} +- {p.KlStandardError:F3} | {Fmt(p.KlExact)} | {Fmt(p.WinRateExact)} | {p.MeanReward:F2} (base {p.BaseMeanReward:F2}) | {p.TokensEvaluatedPerOutputToken:F1} | {p.LatencyMsPerOutput:F1} | {p.FirstTextMs:F1} | {KlBudget.Classify(p.Kl)} |"));
        }
        if (curves.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("Exact curves (tabular model, first prompt): " + string.Join("; ", curves.Select(c => $"{c.Name}: {c.Points.Count} points")) + ".");
        }
        return sb.ToString();

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
            _ => throw new ArgumentException($"--methods: unknown strategy '{m}' (bon, blockwise, tokenwise, rejection)"),
        }),
    ];
}
