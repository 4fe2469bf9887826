using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tilt.Engine.Statistics;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt theory</c>: exact best-of-n and aligned-family numbers for small discrete distributions.</summary>
/// <remarks>
/// Every option is read as text and parsed here rather than by System.CommandLine, so that a bad number,
/// a missing option and an invalid distribution all end the same way: one "error: ..." line naming the
/// option and the offending value, and exit code <see cref="CliConsole.UserErrorExitCode"/>.
/// </remarks>
internal static class TheoryCommand
{
    // Relaxed escaping keeps "<" and ">" in the band descriptions readable; the output is never embedded in HTML.
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create(CliConsole console)
    {
        var theory = new Command("theory", "Exact alignment statistics for discrete distributions (docs/math.md M2-M10).");
        theory.Subcommands.Add(CreateBestOfN(console));
        theory.Subcommands.Add(CreateFamily(console));
        theory.Subcommands.Add(CreateFrontier(console));
        return theory;
    }

    private static Command CreateBestOfN(CliConsole console)
    {
        var p = ProbabilitiesOption("--p", "Base probabilities p(y), comma-separated, summing to 1 (required).");
        var r = new Option<string>("--r") { Description = "Rewards r(y), comma-separated, one per outcome; ties allowed (required)." };
        var n = new Option<string>("--n") { Description = "Number of draws n >= 1 (required)." };
        var json = JsonOption();
        var command = new Command("bon", "Exact best-of-n: pi_n, KL and its bound, E[KLhat], win-rate and its bound (M5-M10).");
        command.Options.Add(p);
        command.Options.Add(r);
        command.Options.Add(n);
        command.Options.Add(json);
        command.SetAction(pr => console.Guard(() =>
        {
            double[] probabilities = ParseDistribution(pr.GetValue(p), "--p");
            double[] rewards = ParseRewards(pr.GetValue(r), "--r", probabilities.Length, "--p");
            int draws = ParseDraws(pr.GetValue(n), "--n");
            var outcomes = new DiscreteOutcomes(probabilities, rewards);
            var bon = new BestOfN(outcomes, draws);
            if (pr.GetValue(json))
            {
                WriteBestOfNJson(console.Out, bon);
            }
            else
            {
                WriteBestOfNText(console.Out, bon);
            }

            return 0;
        }));
        return command;
    }

    private static Command CreateFamily(CliConsole console)
    {
        var p = ProbabilitiesOption("--p", "Base probabilities p(y), comma-separated, summing to 1 (required).");
        var q = ProbabilitiesOption("--q", "Target probabilities q(y), comma-separated, summing to 1; the reward is log q (required).");
        var beta = new Option<string>("--beta") { Description = "Tilt strength beta > 0; pi_beta ~ p * q^(1/beta) (required)." };
        var json = JsonOption();
        var command = new Command("family", "The aligned family pi_beta ~ p * q^(1/beta) (M3): pi_beta, KL(pi_beta || p), cross-entropy to q.");
        command.Options.Add(p);
        command.Options.Add(q);
        command.Options.Add(beta);
        command.Options.Add(json);
        command.SetAction(pr => console.Guard(() =>
        {
            double[] baseProbabilities = ParseDistribution(pr.GetValue(p), "--p");
            double[] target = ParseDistribution(pr.GetValue(q), "--q");
            if (target.Length != baseProbabilities.Length)
            {
                throw new ArgumentException($"--q has {target.Length} values but --p has {baseProbabilities.Length}.");
            }

            double b = ParseBeta(pr.GetValue(beta), "--beta");
            TiltedDistribution pi = AlignedFamily.Tilt(baseProbabilities, target, b);
            if (pr.GetValue(json))
            {
                WriteFamilyJson(console.Out, baseProbabilities, target, pi);
            }
            else
            {
                WriteFamilyText(console.Out, baseProbabilities, target, pi);
            }

            return 0;
        }));
        return command;
    }

    private static Command CreateFrontier(CliConsole console)
    {
        var p = ProbabilitiesOption("--p", "Base probabilities p(y), comma-separated, summing to 1 (required).");
        var r = new Option<string>("--r") { Description = "Rewards r(y), comma-separated, one per outcome (required)." };
        var betas = new Option<string>("--betas") { Description = "Betas > 0, comma-separated. Defaults to 9 log-spaced values from 0.01 to 100." };
        var json = JsonOption();
        var command = new Command("frontier", "Reward-vs-KL frontier of the KL-regularized optimum pi*_beta ~ p * exp(r/beta) (M2): one row per beta.");
        command.Options.Add(p);
        command.Options.Add(r);
        command.Options.Add(betas);
        command.Options.Add(json);
        command.SetAction(pr => console.Guard(() =>
        {
            double[] probabilities = ParseDistribution(pr.GetValue(p), "--p");
            double[] rewards = ParseRewards(pr.GetValue(r), "--r", probabilities.Length, "--p");
            string? betaText = pr.GetValue(betas);
            double[] grid = betaText is null ? AlignedFamily.LogSpacedBetas(0.01, 100.0, 9) : ParseBetas(betaText, "--betas");
            var outcomes = new DiscreteOutcomes(probabilities, rewards);
            FrontierPoint[] points = AlignedFamily.Frontier(outcomes, grid);
            if (pr.GetValue(json))
            {
                WriteFrontierJson(console.Out, outcomes, points);
            }
            else
            {
                WriteFrontierText(console.Out, outcomes, points);
            }

            return 0;
        }));
        return command;
    }

    private static Option<string> ProbabilitiesOption(string name, string description) => new(name) { Description = description };

    private static Option<bool> JsonOption() => new("--json") { Description = "Print one JSON object instead of text." };

    private static void WriteBestOfNText(TextWriter w, BestOfN bon)
    {
        DiscreteOutcomes o = bon.Outcomes;
        w.WriteLine($"best-of-n with n = {bon.N} over {o.Count} outcomes ({o.TieGroupCount} distinct rewards)");
        w.WriteLine();
        w.WriteLine($"{"outcome",-8} {"p",-20} {"r",-20} {"pi_n"}");
        for (int i = 0; i < o.Count; i++)
        {
            w.WriteLine($"{i,-8} {Num(o.Probabilities[i]),-20} {Num(o.Rewards[i]),-20} {Num(bon.Probabilities[i])}");
        }

        w.WriteLine();
        Row(w, "KL(pi_n || p), exact [M6]", bon.Kl);
        Row(w, "KL bound log n - (n-1)/n [M7]", bon.KlBound);
        Row(w, "E[KLhat] under pi_n [M9]", bon.ExpectedKlHat);
        Row(w, "win-rate vs p [M10]", bon.WinRate);
        Row(w, "win-rate bound n/(n+1) [M10]", bon.WinRateBound);
        Row(w, "E[r] under pi_n", bon.ExpectedReward);
        Row(w, "E[r] under p", o.ExpectedReward());
        w.WriteLine($"{"KL budget [M26]",-32} {KlBudget.Describe(bon.Kl)}");
    }

    private static void WriteBestOfNJson(TextWriter w, BestOfN bon)
    {
        DiscreteOutcomes o = bon.Outcomes;
        var rows = new JsonArray();
        for (int i = 0; i < o.Count; i++)
        {
            rows.Add(new JsonObject { ["p"] = o.Probabilities[i], ["r"] = o.Rewards[i], ["piN"] = bon.Probabilities[i] });
        }

        var root = new JsonObject
        {
            ["n"] = bon.N,
            ["outcomes"] = rows,
            ["kl"] = bon.Kl,
            ["klBound"] = bon.KlBound,
            ["expectedKlHat"] = bon.ExpectedKlHat,
            ["winRate"] = bon.WinRate,
            ["winRateBound"] = bon.WinRateBound,
            ["expectedReward"] = bon.ExpectedReward,
            ["baseExpectedReward"] = o.ExpectedReward(),
            ["klBand"] = CliJson.Snake(KlBudget.Classify(bon.Kl)),
            ["klBandDescription"] = KlBudget.Describe(bon.Kl),
        };
        w.WriteLine(root.ToJsonString(Indented));
    }

    private static void WriteFamilyText(TextWriter w, double[] p, double[] q, TiltedDistribution pi)
    {
        w.WriteLine($"aligned family pi_beta ~ p * q^(1/beta) [M3] with beta = {Num(pi.Beta)}");
        w.WriteLine();
        w.WriteLine($"{"outcome",-8} {"p",-20} {"q",-20} {"pi_beta"}");
        for (int i = 0; i < p.Length; i++)
        {
            w.WriteLine($"{i,-8} {Num(p[i]),-20} {Num(q[i]),-20} {Num(pi.Probabilities[i])}");
        }

        w.WriteLine();
        Row(w, "KL(pi_beta || p)", pi.KlToBase);
        Row(w, "cross-entropy H(pi_beta, q)", -pi.ExpectedReward);
        w.WriteLine($"{"KL budget [M26]",-32} {KlBudget.Describe(pi.KlToBase)}");
    }

    private static void WriteFamilyJson(TextWriter w, double[] p, double[] q, TiltedDistribution pi)
    {
        var rows = new JsonArray();
        for (int i = 0; i < p.Length; i++)
        {
            rows.Add(new JsonObject { ["p"] = p[i], ["q"] = q[i], ["piBeta"] = pi.Probabilities[i] });
        }

        var root = new JsonObject
        {
            ["beta"] = pi.Beta,
            ["outcomes"] = rows,
            ["kl"] = pi.KlToBase,
            ["crossEntropy"] = -pi.ExpectedReward,
            ["klBand"] = CliJson.Snake(KlBudget.Classify(pi.KlToBase)),
            ["klBandDescription"] = KlBudget.Describe(pi.KlToBase),
        };
        w.WriteLine(root.ToJsonString(Indented));
    }

    private static void WriteFrontierText(TextWriter w, DiscreteOutcomes outcomes, FrontierPoint[] points)
    {
        w.WriteLine($"KL-regularized optimum pi*_beta ~ p * exp(r/beta) [M2]; E[r] under p = {Num(outcomes.ExpectedReward())}");
        w.WriteLine();
        w.WriteLine($"{"beta",-20} {"KL",-20} {"E[r]",-20} {"win-rate",-20} {"band"}");
        foreach (FrontierPoint point in points)
        {
            w.WriteLine(
                $"{Num(point.Beta),-20} {Num(point.Kl),-20} {Num(point.ExpectedReward),-20} {Num(point.WinRate),-20} {KlBudget.Classify(point.Kl)}");
        }
    }

    private static void WriteFrontierJson(TextWriter w, DiscreteOutcomes outcomes, FrontierPoint[] points)
    {
        var rows = new JsonArray();
        foreach (FrontierPoint point in points)
        {
            rows.Add(new JsonObject
            {
                ["beta"] = point.Beta,
                ["kl"] = point.Kl,
                ["expectedReward"] = point.ExpectedReward,
                ["winRate"] = point.WinRate,
                ["klBand"] = CliJson.Snake(KlBudget.Classify(point.Kl)),
            });
        }

        var root = new JsonObject { ["baseExpectedReward"] = outcomes.ExpectedReward(), ["points"] = rows };
        w.WriteLine(root.ToJsonString(Indented));
    }

    private static void Row(TextWriter w, string label, double value) => w.WriteLine($"{label,-32} {Num(value)}");

    private static string Num(double value) => value.ToString("G12", CultureInfo.InvariantCulture);

    private static double[] ParseDistribution(string? text, string option)
    {
        double[] values = ParseNumbers(text, option);
        if (ProbabilityVector.FindProblem(values, option) is { } problem)
        {
            throw new ArgumentException(problem);
        }

        return values;
    }

    private static double[] ParseRewards(string? text, string option, int expectedCount, string countOption)
    {
        double[] values = ParseNumbers(text, option);
        for (int i = 0; i < values.Length; i++)
        {
            if (!double.IsFinite(values[i]))
            {
                throw new ArgumentException($"{option}[{i}] = {Format(values[i])} is not a finite number.");
            }
        }

        if (values.Length != expectedCount)
        {
            throw new ArgumentException($"{option} has {values.Length} values but {countOption} has {expectedCount}.");
        }

        return values;
    }

    private static double[] ParseBetas(string text, string option)
    {
        double[] values = ParseNumbers(text, option);
        for (int i = 0; i < values.Length; i++)
        {
            RequireBeta(values[i], $"{option}[{i}]");
        }

        return values;
    }

    private static double ParseBeta(string? text, string option)
    {
        double[] values = ParseNumbers(text, option);
        if (values.Length != 1)
        {
            throw new ArgumentException($"{option} takes one number, got {values.Length} (\"{text}\").");
        }

        RequireBeta(values[0], option);
        return values[0];
    }

    private static void RequireBeta(double beta, string name)
    {
        if (!double.IsFinite(beta) || beta <= 0.0)
        {
            throw new ArgumentException($"{name} must be a finite number > 0, got {Format(beta)}.");
        }
    }

    private static int ParseDraws(string? text, string option)
    {
        if (text is null)
        {
            throw new ArgumentException($"{option} is required.");
        }

        if (!int.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n))
        {
            throw new ArgumentException($"{option}: \"{text}\" is not an integer (1 to {int.MaxValue}).");
        }

        if (n < 1)
        {
            throw new ArgumentException($"{option} must be >= 1, got {n}.");
        }

        return n;
    }

    private static double[] ParseNumbers(string? text, string option)
    {
        if (text is null)
        {
            throw new ArgumentException($"{option} is required.");
        }

        string[] items = text.Split(',');
        var values = new double[items.Length];
        for (int i = 0; i < items.Length; i++)
        {
            string item = items[i].Trim();
            if (!double.TryParse(item, NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]))
            {
                throw new ArgumentException($"{option}: \"{item}\" (item {i + 1} of \"{text}\") is not a number.");
            }
        }

        return values;
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
