using static Tilt.Cli.Commands.TheoryInput;
using static Tilt.Cli.Commands.TheoryReports;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt theory</c>: exact best-of-n and aligned-family numbers for small discrete distributions.</summary>
/// <remarks>
/// Every option is read as text and parsed by <see cref="TheoryInput"/>, so that a bad number, a missing option and an
/// invalid distribution all end the same way: one "error: ..." line naming the option and the offending value, and exit
/// code <see cref="CliConsole.UserErrorExitCode"/>. <see cref="TheoryReports"/> prints the results.
/// </remarks>
internal static class TheoryCommand
{
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
        var p = Text("--p", BaseProbabilities);
        var r = Text("--r", "Rewards r(y), comma-separated, one per outcome; ties allowed (required).");
        var n = Text("--n", "Number of draws n >= 1 (required).");
        return Subcommand(console, "bon", "Exact best-of-n: pi_n, KL and its bound, E[KLhat], win-rate and its bound (M5-M10).", [p, r, n], pr =>
        {
            var bon = new BestOfN(Outcomes(pr, p, r), ParseDraws(pr.GetValue(n), "--n"));
            return new Report(w => WriteBestOfNText(w, bon), w => WriteBestOfNJson(w, bon));
        });
    }

    private static Command CreateFamily(CliConsole console)
    {
        var p = Text("--p", BaseProbabilities);
        var q = Text("--q", "Target probabilities q(y), comma-separated, summing to 1; the reward is log q (required).");
        var beta = Text("--beta", "Tilt strength beta > 0; pi_beta ~ p * q^(1/beta) (required).");
        return Subcommand(console, "family", "The aligned family pi_beta ~ p * q^(1/beta) (M3): pi_beta, KL(pi_beta || p), cross-entropy to q.", [p, q, beta], pr =>
        {
            double[] baseProbabilities = ParseDistribution(pr.GetValue(p), "--p");
            double[] target = ParseDistribution(pr.GetValue(q), "--q");
            if (target.Length != baseProbabilities.Length)
            {
                throw new ArgumentException($"--q has {target.Length} values but --p has {baseProbabilities.Length}.");
            }

            TiltedDistribution pi = AlignedFamily.Tilt(baseProbabilities, target, ParseBeta(pr.GetValue(beta), "--beta"));
            return new Report(w => WriteFamilyText(w, baseProbabilities, target, pi), w => WriteFamilyJson(w, baseProbabilities, target, pi));
        });
    }

    private static Command CreateFrontier(CliConsole console)
    {
        var p = Text("--p", BaseProbabilities);
        var r = Text("--r", "Rewards r(y), comma-separated, one per outcome (required).");
        var betas = Text("--betas", "Betas > 0, comma-separated. Defaults to 9 log-spaced values from 0.01 to 100.");
        return Subcommand(console, "frontier", "Reward-vs-KL frontier of the KL-regularized optimum pi*_beta ~ p * exp(r/beta) (M2): one row per beta.", [p, r, betas], pr =>
        {
            var outcomes = Outcomes(pr, p, r);
            double[] grid = pr.GetValue(betas) is { } betaText ? ParseBetas(betaText, "--betas") : AlignedFamily.LogSpacedBetas(0.01, 100.0, 9);
            FrontierPoint[] points = AlignedFamily.Frontier(outcomes, grid);
            return new Report(w => WriteFrontierText(w, outcomes, points), w => WriteFrontierJson(w, outcomes, points));
        });
    }

    private const string BaseProbabilities = "Base probabilities p(y), comma-separated, summing to 1 (required).";

    /// <summary>A computed result, ready to print either way.</summary>
    private sealed record Report(Action<TextWriter> AsText, Action<TextWriter> AsJson);

    /// <summary>A subcommand with <paramref name="options"/> and <c>--json</c>: computes, then prints text or JSON.</summary>
    private static Command Subcommand(CliConsole console, string name, string description, Option[] options, Func<ParseResult, Report> compute)
    {
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var command = new Command(name, description);
        foreach (var option in options) command.Options.Add(option);
        command.Options.Add(json);
        command.SetAction(pr => console.Guard(() =>
        {
            var report = compute(pr);
            (pr.GetValue(json) ? report.AsJson : report.AsText)(console.Out);
            return 0;
        }));
        return command;
    }

    private static Option<string> Text(string name, string description) => new(name) { Description = description };

    /// <summary>--p and --r: a distribution and one finite reward per outcome.</summary>
    private static DiscreteOutcomes Outcomes(ParseResult pr, Option<string> p, Option<string> r)
    {
        double[] probabilities = ParseDistribution(pr.GetValue(p), "--p");
        return new DiscreteOutcomes(probabilities, ParseRewards(pr.GetValue(r), "--r", probabilities.Length, "--p"));
    }
}
