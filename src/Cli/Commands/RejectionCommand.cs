namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt rejection calibrate</c>: how well early rejection's partial scorer (the reward on the prefix) ranks candidates
/// at t generated tokens compared with their final reward, and what a single decision at t costs and keeps (budget mode,
/// <c>--decide-at</c>). From N base continuations per prompt it writes, per prefix length t = 1, 2, 4, ...: Spearman's rank
/// correlation (within prompt, averaged, 95% interval over prompts), and per (n, alpha): the probability that one
/// decision at t keeps best-of-n's winner, the reward it returns and the tokens it decodes, against best-of-n given at
/// least as many tokens. Every number is computed on the same drawn candidates (disjoint groups of n per prompt), by the
/// rule of <c>RejectionRun</c> (docs/rejection.md).
/// </summary>
internal static class RejectionCommand
{
    /// <summary>CLI JSON, with "NaN" for an undefined correlation or interval (every prefix score tied, one group).</summary>
    private static readonly JsonSerializerOptions FileJson = new(CliJson.Options)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The winner-kept probability <c>--decide-at auto</c> asks of the calibration.</summary>
    public const double AutoTarget = 0.9;

    public static Command Create(CliConsole console)
    {
        var model = new ModelOptions();
        var reward = new Option<string>("--reward", "-r") { Description = "Reward spec (its value on the prefix is the scorer).", DefaultValueFactory = _ => "lexicon:sentiment" };
        var prompts = new Option<int>("--prompts") { Description = "Prompts, the first N built-in story openings (1..12).", DefaultValueFactory = _ => 12 };
        var samples = new Option<int>("--samples") { Description = "Base continuations per prompt (drawn 256 at a time).", DefaultValueFactory = _ => 256 };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Generated tokens per continuation at most.", DefaultValueFactory = _ => 64 };
        var ns = new Option<int[]>("--n") { Description = "Candidates per request the decision is calibrated for (repeatable).", DefaultValueFactory = _ => [16, 32, 64], AllowMultipleArgumentsPerToken = true };
        var alphas = new Option<double[]>("--alpha") { Description = "Fractions stopped at the decision (repeatable).", DefaultValueFactory = _ => [0.5, 0.75, 0.875], AllowMultipleArgumentsPerToken = true };
        var seed = new Option<ulong>("--seed") { Description = "RNG seed.", DefaultValueFactory = _ => 0UL };
        var output = new Option<string?>("--out", "-o") { Description = "The calibration JSON (written atomically); --decide-at auto --calibration FILE reads it." };

        var calibrate = new Command("calibrate",
            "Measure how the prefix reward at t tokens ranks candidates against the final reward (Spearman, within prompt) and whether one " +
            $"decision at t keeps best-of-n's winner; --decide-at auto picks the smallest t keeping it with probability >= {AutoTarget}.");
        model.AddTo(calibrate);
        foreach (var o in new Option[] { reward, prompts, samples, maxTokens, ns, alphas, seed, output }) calibrate.Options.Add(o);
        calibrate.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            int promptCount = parse.GetValue(prompts), perPrompt = parse.GetValue(samples), tokens = parse.GetValue(maxTokens);
            if (promptCount is < 1 or > 12) throw new ArgumentException($"--prompts must be between 1 and 12, got {promptCount}");
            if (perPrompt < 2) throw new ArgumentException($"--samples must be at least 2, got {perPrompt}");
            if (tokens < 2) throw new ArgumentException($"--max-tokens must be at least 2, got {tokens}");
            var groupSizes = parse.GetValue(ns)!;
            foreach (int n in groupSizes)
                if (n < 2 || n > perPrompt) throw new ArgumentException($"--n must be between 2 and --samples ({perPrompt}), got {n}");
            var fractions = parse.GetValue(alphas)!;
            foreach (double a in fractions)
                if (!(a is > 0 and < 1)) throw new ArgumentException($"--alpha must be in (0, 1), got {a}");
            string? outFile = parse.GetValue(output) is { } o ? AtomicFile.CheckTarget(o) : null;

            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            var rewardFn = RewardSpec.Parse(parse.GetValue(reward)!, new RewardSpecContext { HeadRewardFactory = path => HeadReward.Load(path, lm.Info) });
            if (rewardFn.NeedsHiddenState)
                throw new ArgumentException($"--reward {rewardFn.Description} reads hidden states: its prefix score needs the prefix's hidden state, which calibrate does not decode yet");
            var lengths = Enumerable.Range(0, 31).Select(i => 1 << i).TakeWhile(t => t < tokens).ToArray();
            var promptTexts = PromptSet.StoryOpenings.Take(promptCount).ToArray();

            var draws = new List<PromptDraw>();
            for (int p = 0; p < promptTexts.Length; p++)
            {
                var candidates = new List<ScoredCandidate>();
                for (int start = 0; start < perPrompt; start += SessionOptions.MaxSupportedSequences)
                {
                    int n = Math.Min(SessionOptions.MaxSupportedSequences, perPrompt - start);
                    var options = new BestOfNOptions
                    {
                        N = n, ReturnCandidates = true, MaxTokens = tokens, Seed = parse.GetValue(seed) + (ulong)(p * 1000 + start),
                    };
                    await foreach (var e in DecodingEngine.StreamOnOwnEngine(lm, kernels,
                        new DecodingRequest { Prompt = promptTexts[p], Options = options, Reward = rewardFn }, new ContextSettings(model.GetThreads(parse)), cancellationToken))
                        if (e is SampleCompleted done) candidates.AddRange(done.Result.Candidates);
                }
                draws.Add(Score(lm, rewardFn, promptTexts[p], candidates, lengths));
                await console.Error.WriteLineAsync($"prompt {p + 1}/{promptTexts.Length}: {candidates.Count} continuations scored at {lengths.Length} prefix lengths");
            }

            var report = Calibrate(draws, lengths, groupSizes, fractions, rewardFn.Description, Path.GetFileName(lm.Info.Path), tokens, parse.GetValue(seed));
            if (outFile is not null) AtomicFile.WriteAllText(outFile, JsonSerializer.Serialize(report, FileJson), cancellationToken);
            await console.Out.WriteAsync(Table(report));
            return 0;
        }));

        var command = new Command("rejection", "Early rejection's calibration (budget mode: --decide-at).");
        command.Subcommands.Add(calibrate);
        return command;
    }

    /// <summary>One prompt's continuations: final rewards, lengths, and prefix scores by length (a finished one keeps its final reward).</summary>
    internal sealed record PromptDraw(string Prompt, double[] Final, int[] Length, bool[] Stopped, double[][] PrefixScores);

    private static PromptDraw Score(ILanguageModel lm, IReward reward, string prompt, List<ScoredCandidate> candidates, int[] lengths)
    {
        var final = candidates.Select(c => c.Reward).ToArray();
        var prefix = new double[lengths.Length][];
        for (int l = 0; l < lengths.Length; l++)
        {
            int t = lengths[l];
            var open = Enumerable.Range(0, candidates.Count).Where(i => candidates[i].Tokens.Count > t).ToArray();
            var inputs = open.Select(i =>
            {
                var tokens = candidates[i].Tokens.Take(t).ToArray();
                return new RewardInput { Prompt = prompt, Tokens = tokens, Text = lm.Detokenize(tokens), IsFinished = false };
            }).ToArray();
            var scores = new double[inputs.Length];
            reward.ScoreChecked(inputs, scores);
            prefix[l] = (double[])final.Clone();
            for (int j = 0; j < open.Length; j++) prefix[l][open[j]] = scores[j];
        }
        return new PromptDraw(prompt, final, candidates.Select(c => c.Tokens.Count).ToArray(), candidates.Select(c => c.Finished).ToArray(), prefix);
    }

    /// <summary>Spearman at one prefix length: mean over prompts (NaN ones, all prefix scores tied, left out) with its interval.</summary>
    internal sealed record CorrelationRow(int Tokens, double Spearman, double Lower, double Upper, int Prompts, int TiedPrompts, double FinishedFraction);

    /// <summary>One budget-mode setting against best-of-n given at least its tokens.</summary>
    internal sealed record BudgetRow(int N, double Alpha, int DecideAt, double WinnerKept, double WinnerKeptLower, double WinnerKeptUpper, int Groups,
        double Reward, double RewardLower, double RewardUpper, double TokensEvaluated,
        int BonN, double BonReward, double BonLower, double BonUpper, double BonTokensEvaluated, int BonGroups, bool Above);

    /// <summary>Best-of-n on the same draws.</summary>
    internal sealed record BonRow(int N, double Reward, double Lower, double Upper, double TokensEvaluated, int Groups);

    internal sealed record CalibrationReport(string Format, string Model, string Reward, int MaxTokens, ulong Seed, IReadOnlyList<string> Prompts,
        int SamplesPerPrompt, double MeanLength, IReadOnlyList<CorrelationRow> Correlations, IReadOnlyList<BonRow> BestOfN, IReadOnlyList<BudgetRow> Budget,
        IReadOnlyList<AutoRow> Auto);

    /// <summary>What <c>--decide-at auto</c> picks for (n, alpha): null when no calibrated length keeps the winner often enough.</summary>
    internal sealed record AutoRow(int N, double Alpha, int? DecideAt, double Target);

    internal static CalibrationReport Calibrate(IReadOnlyList<PromptDraw> draws, int[] lengths, int[] ns, double[] alphas, string reward, string model, int maxTokens, ulong seed)
    {
        var correlations = new List<CorrelationRow>();
        for (int l = 0; l < lengths.Length; l++)
        {
            var rhos = draws.Select(d => RejectionCalibration.Spearman(d.PrefixScores[l], d.Final)).ToArray();
            var defined = rhos.Where(double.IsFinite).ToArray();
            var e = IntervalEstimate.OfMean(defined);
            double finished = draws.Average(d => d.Length.Count(n => n <= lengths[l]) / (double)d.Length.Length);
            correlations.Add(new CorrelationRow(lengths[l], e.Mean, e.Lower, e.Upper, defined.Length, rhos.Length - defined.Length, finished));
        }

        // Disjoint groups of n consecutive candidates per prompt: independent requests of n candidates each.
        IEnumerable<(PromptDraw Draw, int[] Members)> Groups(int n) =>
            draws.SelectMany(d => Enumerable.Range(0, d.Final.Length / n).Select(g => (d, Enumerable.Range(g * n, n).ToArray())));

        double meanLength = draws.SelectMany(d => d.Length).Average();
        BonRow Bon(int n)
        {
            var groups = Groups(n).ToArray();
            var rewards = groups.Select(g => g.Members.Max(i => g.Draw.Final[i])).ToArray();
            var e = IntervalEstimate.OfMean(rewards);
            return new BonRow(n, e.Mean, e.Lower, e.Upper, groups.Average(g => (double)g.Members.Sum(i => g.Draw.Length[i])), groups.Length);
        }
        int largest = draws.Min(d => d.Final.Length) / 2;
        var bon = Enumerable.Range(0, 9).Select(i => 1 << i).TakeWhile(n => n <= largest).Select(Bon).ToList();

        var budget = new List<BudgetRow>();
        var auto = new List<AutoRow>();
        foreach (int n in ns)
            foreach (double alpha in alphas)
            {
                var kept = new List<(int, double)>();
                for (int l = 0; l < lengths.Length; l++)
                {
                    int t = lengths[l];
                    var groups = Groups(n).ToArray();
                    int keeps = 0;
                    var rewards = new double[groups.Length];
                    var evaluated = new double[groups.Length];
                    for (int g = 0; g < groups.Length; g++)
                    {
                        var (d, members) = groups[g];
                        var scores = members.Select(i => d.PrefixScores[l][i]).ToArray();
                        var finished = members.Select(i => d.Length[i] <= t).ToArray();
                        var final = members.Select(i => d.Final[i]).ToArray();
                        var survivors = RejectionCalibration.Survivors(scores, finished, alpha);
                        if (RejectionCalibration.KeepsWinner(scores, finished, final, alpha)) keeps++;
                        rewards[g] = Enumerable.Range(0, members.Length).Where(j => survivors[j]).Max(j => final[j]);
                        evaluated[g] = Enumerable.Range(0, members.Length).Sum(j => survivors[j] ? d.Length[members[j]] : Math.Min(t, d.Length[members[j]]));
                    }
                    var p = IntervalEstimate.OfProportion(keeps, groups.Length);
                    var r = IntervalEstimate.OfMean(rewards);
                    double tokens = evaluated.Average();
                    // Best-of-n given at least the same tokens: enough whole candidates of the mean length.
                    int bonN = Math.Min(largest, Math.Max(1, (int)Math.Ceiling(tokens / meanLength)));
                    var b = Bon(bonN);
                    budget.Add(new BudgetRow(n, alpha, t, p.Mean, p.Lower, p.Upper, groups.Length, r.Mean, r.Lower, r.Upper, tokens,
                        bonN, b.Reward, b.Lower, b.Upper, b.TokensEvaluated, b.Groups, r.Lower > b.Upper && b.TokensEvaluated >= tokens));
                    kept.Add((t, p.Mean));
                }
                auto.Add(new AutoRow(n, alpha, RejectionCalibration.ChooseDecisionLength(kept, AutoTarget), AutoTarget));
            }
        return new CalibrationReport("tilt-rejection-calibration/1", model, reward, maxTokens, seed, draws.Select(d => d.Prompt).ToArray(),
            draws.Min(d => d.Final.Length), meanLength, correlations, bon, budget, auto);
    }

    /// <summary>The decision length <c>--decide-at auto</c> takes from a calibration file for (n, alpha).</summary>
    public static int DecisionLength(string path, int n, double alpha)
    {
        CalibrationReport report;
        try
        {
            report = JsonSerializer.Deserialize<CalibrationReport>(File.ReadAllText(path), FileJson)
                ?? throw new ArgumentException($"--calibration {path}: empty");
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"--calibration {path}: not a calibration file ({e.Message})");
        }
        if (report.Format != "tilt-rejection-calibration/1") throw new ArgumentException($"--calibration {path}: format '{report.Format}', expected tilt-rejection-calibration/1");
        var row = report.Auto.FirstOrDefault(a => a.N == n && Math.Abs(a.Alpha - alpha) < 1e-12)
            ?? throw new ArgumentException($"--calibration {path} has no entry for --n {n} --alpha {alpha} (it has: {string.Join(", ", report.Auto.Select(a => $"n={a.N} alpha={a.Alpha}"))})");
        return row.DecideAt ?? throw new ArgumentException(
            $"--decide-at auto: no calibrated length keeps best-of-{n}'s winner with probability >= {row.Target} at alpha {alpha} ({path}); give a length or a smaller alpha");
    }

    internal static string Table(CalibrationReport r)
    {
        var s = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        s.AppendLine(c, $"reward {r.Reward}, model {r.Model}, {r.Prompts.Count} prompts x {r.SamplesPerPrompt} continuations of at most {r.MaxTokens} tokens (mean {r.MeanLength:F1}), seed {r.Seed}");
        s.AppendLine();
        s.AppendLine("| prefix tokens t | Spearman(prefix score, final reward) [95% CI over prompts] | prompts (all-tied left out) | finished by t |");
        s.AppendLine("|---|---|---|---|");
        foreach (var row in r.Correlations)
            s.AppendLine(c, $"| {row.Tokens} | {row.Spearman:F3} [{row.Lower:F3}, {row.Upper:F3}] | {row.Prompts} ({row.TiedPrompts}) | {row.FinishedFraction:P0} |");
        s.AppendLine();
        s.AppendLine("| best-of-n | reward [95% CI] | tokens evaluated | groups |");
        s.AppendLine("|---|---|---|---|");
        foreach (var b in r.BestOfN) s.AppendLine(c, $"| {b.N} | {b.Reward:F3} [{b.Lower:F3}, {b.Upper:F3}] | {b.TokensEvaluated:F0} | {b.Groups} |");
        s.AppendLine();
        s.AppendLine("| n | alpha | decide at t | winner kept [95% CI] | reward [95% CI] | tokens evaluated | best-of-n' at >= those tokens: n', reward [95% CI], tokens | above? |");
        s.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var b in r.Budget)
            s.AppendLine(c, $"| {b.N} | {b.Alpha} | {b.DecideAt} | {b.WinnerKept:F2} [{b.WinnerKeptLower:F2}, {b.WinnerKeptUpper:F2}] ({b.Groups}) | {b.Reward:F3} [{b.RewardLower:F3}, {b.RewardUpper:F3}] | {b.TokensEvaluated:F0} | " +
                $"{b.BonN}, {b.BonReward:F3} [{b.BonLower:F3}, {b.BonUpper:F3}], {b.BonTokensEvaluated:F0} | {(b.Above ? "yes" : "no")} |");
        s.AppendLine();
        foreach (var a in r.Auto)
            s.AppendLine(c, $"--decide-at auto, n={a.N}, alpha={a.Alpha}: {(a.DecideAt is { } t ? $"t = {t}" : $"none (no t keeps the winner with probability >= {a.Target})")}");
        return s.ToString();
    }
}
