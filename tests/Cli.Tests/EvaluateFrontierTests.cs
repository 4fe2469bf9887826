using System.Text.Json;
using Tilt.Engine.Evaluation;

namespace Tilt.Cli.Tests;

/// <summary>evaluate --frontier end to end on the tabular example model (docs/frontier.md).</summary>
public sealed class EvaluateFrontierTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-frontier-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task TheFrontierPresetDefaultsTo64OutputsAndWritesItsTablePlotsAndPerOutputFirstTextTimes()
    {
        var run = await CliRunner.RunAsync("evaluate", "--model", CliRunner.TabularExample(), "--frontier", "--top-k", "0", "--methods", "bon,tokenwise",
            "--max-tokens", "2", "--base-samples", "100", "--seed", "1", "--out", _dir);
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("1 prompts x 64 outputs", run.Error);
        using (var settings = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "settings.json"))))
            Assert.Equal(64, settings.RootElement.GetProperty("outputsPerPrompt").GetInt32());
        var points = PointStore.OpenExisting(_dir).Points;
        Assert.Equal(7 + EvaluationConfig.FrontierBetas.Count, points.Count);
        Assert.All(points, p => Assert.Equal(64, p.Outputs));
        Assert.All(points, p => Assert.Equal(64, p.FirstTextMsByPrompt![0].Count));
        Assert.All(points, p => Assert.All(p.FirstTextMsByPrompt![0], t => Assert.True(t >= 0)));
        foreach (string file in new[] { "frontier.json", "firsttext_vs_kl.png", "winrate_vs_kl.png", "reward_vs_compute.png" })
            Assert.True(File.Exists(Path.Combine(_dir, file)), file);
        string report = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains("sweep: frontier", report);
        Assert.Contains("## The frontier", report);
        using var frontier = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "frontier.json")));
        var rows = frontier.RootElement.GetProperty("rows").EnumerateArray().ToArray();
        Assert.Equal(points.Count, rows.Length);
        // Every token-wise point is paired with a best-of-n point; best-of-n points are not.
        foreach (var row in rows)
        {
            bool bon = row.GetProperty("point").GetString()!.StartsWith("bon-", StringComparison.Ordinal);
            Assert.Equal(bon, row.GetProperty("nearestBestOfN").ValueKind == JsonValueKind.Null);
            Assert.Equal(bon, row.GetProperty("klBound").ValueKind != JsonValueKind.Null);
        }
    }

    [Fact]
    public async Task OnTheTabularModelBestOfNAndExactSoftTokenwiseCdLieOnTheirExactCurves()
    {
        var run = await CliRunner.RunAsync("evaluate", "--model", CliRunner.TabularExample(), "--frontier", "--value", "exact-soft", "--top-k", "0",
            "--methods", "bon,tokenwise", "--max-tokens", "4", "--outputs", "1500", "--base-samples", "2000", "--seed", "5", "--out", _dir);
        Assert.True(run.ExitCode == 0, run.Error);
        using var frontier = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "frontier.json")));
        var checks = frontier.RootElement.GetProperty("checks").EnumerateArray().ToArray();
        Assert.Equal(7, checks.Count(c => c.GetProperty("point").GetString()!.StartsWith("bon-", StringComparison.Ordinal)));
        Assert.Equal(EvaluationConfig.FrontierBetas.Count, checks.Count(c => c.GetProperty("point").GetString()!.StartsWith("tokenwise-", StringComparison.Ordinal)));
        // About 40 z values (win-rate and reward per point, KL for token-wise). At 4 standard errors each misses with
        // probability 6e-5 if unbiased and normal: the test's false-failure rate is below 0.3% over seeds (this seed is fixed).
        int judged = 0;
        foreach (var c in checks)
        {
            foreach (string figure in new[] { "klZ", "rewardZ", "winRateZ" })
            {
                if (c.GetProperty(figure).ValueKind == JsonValueKind.Null) continue;
                judged++;
                double z = c.GetProperty(figure).GetDouble();
                Assert.True(Math.Abs(z) <= 4, $"{c.GetProperty("point").GetString()}: {figure} = {z:F2}");
            }
        }
        Assert.True(judged >= 30, $"only {judged} figures were judged");
        // Token-wise KL is judged against pi*_beta for every beta: the check does compare KL, not only reward.
        Assert.All(checks.Where(c => c.GetProperty("point").GetString()!.StartsWith("tokenwise-", StringComparison.Ordinal)),
            c => Assert.NotEqual(JsonValueKind.Null, c.GetProperty("klZ").ValueKind));
        Assert.Contains("## Against the exact curves (tabular model)", File.ReadAllText(Path.Combine(_dir, "report.md")));
    }

    [Fact]
    public async Task QuickAndFrontierTogetherAreAUserError()
    {
        var run = await CliRunner.RunAsync("evaluate", "--model", CliRunner.TabularExample(), "--quick", "--frontier", "--out", _dir);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("either --quick or --frontier", run.Error);
    }
}
