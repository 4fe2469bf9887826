using System.Text.Encodings.Web;
using System.Text.Json.Nodes;

namespace Tilt.Cli.Commands;

/// <summary>What <c>tilt theory</c> prints: each subcommand's result as aligned text or as one indented JSON object.</summary>
internal static class TheoryReports
{
    // Relaxed escaping keeps "<" and ">" in the band descriptions readable; the output is never embedded in HTML.
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void WriteBestOfNText(TextWriter w, BestOfN bon)
    {
        DiscreteOutcomes o = bon.Outcomes;
        OutcomeTable(w, $"best-of-n with n = {bon.N} over {o.Count} outcomes ({o.TieGroupCount} distinct rewards)",
            ("p", o.Probabilities), ("r", o.Rewards), ("pi_n", bon.Probabilities));
        Row(w, "KL(pi_n || p), exact [M6]", bon.Kl);
        Row(w, "KL bound log n - (n-1)/n [M7]", bon.KlBound);
        Row(w, "E[KLhat] under pi_n [M9]", bon.ExpectedKlHat);
        Row(w, "win-rate vs p [M10]", bon.WinRate);
        Row(w, "win-rate bound n/(n+1) [M10]", bon.WinRateBound);
        Row(w, "E[r] under pi_n", bon.ExpectedReward);
        Row(w, "E[r] under p", o.ExpectedReward());
        w.WriteLine($"{"KL budget [M26]",-32} {KlBudget.Describe(bon.Kl)}");
    }

    public static void WriteBestOfNJson(TextWriter w, BestOfN bon)
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

    public static void WriteFamilyText(TextWriter w, double[] p, double[] q, TiltedDistribution pi)
    {
        OutcomeTable(w, $"aligned family pi_beta ~ p * q^(1/beta) [M3] with beta = {Num(pi.Beta)}", ("p", p), ("q", q), ("pi_beta", pi.Probabilities));
        Row(w, "KL(pi_beta || p)", pi.KlToBase);
        Row(w, "cross-entropy H(pi_beta, q)", -pi.ExpectedReward);
        w.WriteLine($"{"KL budget [M26]",-32} {KlBudget.Describe(pi.KlToBase)}");
    }

    public static void WriteFamilyJson(TextWriter w, double[] p, double[] q, TiltedDistribution pi)
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

    public static void WriteFrontierText(TextWriter w, DiscreteOutcomes outcomes, FrontierPoint[] points)
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

    public static void WriteFrontierJson(TextWriter w, DiscreteOutcomes outcomes, FrontierPoint[] points)
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

    /// <summary>A title, then one row per outcome: its index and three columns (the last one unpadded), then a blank line.</summary>
    private static void OutcomeTable(TextWriter w, string title, (string Name, IReadOnlyList<double> Values) a, (string Name, IReadOnlyList<double> Values) b,
        (string Name, IReadOnlyList<double> Values) c)
    {
        w.WriteLine(title);
        w.WriteLine();
        w.WriteLine($"{"outcome",-8} {a.Name,-20} {b.Name,-20} {c.Name}");
        for (int i = 0; i < a.Values.Count; i++)
        {
            w.WriteLine($"{i,-8} {Num(a.Values[i]),-20} {Num(b.Values[i]),-20} {Num(c.Values[i])}");
        }

        w.WriteLine();
    }

    private static void Row(TextWriter w, string label, double value) => w.WriteLine($"{label,-32} {Num(value)}");

    private static string Num(double value) => value.ToString("G12", CultureInfo.InvariantCulture);

}
