using System.Text.Json;
using Tilt.Engine.Evaluation;

namespace Tilt.Cli.Tests;

/// <summary><c>evaluate --shard I/N</c>, <c>evaluate --merge DIR...</c> and the aligned-against-aligned table.</summary>
public sealed class EvaluateShardTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-shard-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string[] Args(string output, string seed = "5") =>
    [
        "evaluate", "--model", CliRunner.TabularExample(), "--value", "exact-soft", "--top-k", "0", "--quick",
        "--max-tokens", "4", "--outputs", "200", "--base-samples", "200", "--seed", seed, "--out", output,
    ];

    private static List<EvaluatedPoint> Points(string folder) =>
        JsonSerializer.Deserialize<List<EvaluatedPoint>>(File.ReadAllText(Path.Combine(folder, "points.json")),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } })!;

    [Fact]
    public async Task ShardsCoverTheSweepOnceAndTheirMergeEqualsTheWholeRun()
    {
        string whole = Path.Combine(_dir, "whole"), a = Path.Combine(_dir, "shard0"), b = Path.Combine(_dir, "shard1"), merged = Path.Combine(_dir, "merged");
        foreach (var (folder, shard) in new[] { (whole, (string?)null), (a, "0/2"), (b, "1/2") })
        {
            var run = await CliRunner.RunAsync(shard is null ? Args(folder) : [.. Args(folder), "--shard", shard]);
            Assert.True(run.ExitCode == 0, run.Error);
        }
        var ids = EvaluationConfig.QuickSweep(0).Select(c => c.FitTo(4).Id).ToArray();
        Assert.Equal(ids.Where((_, j) => j % 2 == 0).Order(), Points(a).Select(p => p.Id).Order());
        Assert.Equal(ids.Where((_, j) => j % 2 == 1).Order(), Points(b).Select(p => p.Id).Order());

        var merge = await CliRunner.RunAsync("evaluate", "--merge", a, b, "--out", merged);
        Assert.True(merge.ExitCode == 0, merge.Error);
        var combined = Points(merged).ToDictionary(p => p.Id);
        Assert.Equal(ids.Order(), combined.Keys.Order());
        foreach (var p in Points(whole))
        {
            // Seeded per point and prompt, so a shard measures exactly what the whole run does (timings aside).
            var m = combined[p.Id];
            Assert.Equal(p.WinRate, m.WinRate);
            Assert.Equal(p.Kl, m.Kl);
            Assert.Equal(p.PromptRewards, m.PromptRewards);
            Assert.NotNull(m.PromptRewards);
        }
        Assert.Equal(File.ReadAllText(Path.Combine(whole, EvaluationIdentity.FileName)), File.ReadAllText(Path.Combine(merged, EvaluationIdentity.FileName)));
        string report = File.ReadAllText(Path.Combine(merged, "report.md"));
        Assert.Contains("merged from", report);
        Assert.Contains("## Aligned against aligned", report);
        Assert.True(File.Exists(Path.Combine(merged, "winrate_vs_kl.png")));
    }

    [Fact]
    public async Task FoldersOfOtherSettingsAreNotMerged()
    {
        string a = Path.Combine(_dir, "a"), b = Path.Combine(_dir, "b");
        Assert.Equal(0, (await CliRunner.RunAsync([.. Args(a), "--shard", "0/3"])).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync([.. Args(b, seed: "6"), "--shard", "1/3"])).ExitCode);
        var merge = await CliRunner.RunAsync("evaluate", "--merge", a, b, "--out", Path.Combine(_dir, "m"));
        Assert.Equal(2, merge.ExitCode);
        Assert.Contains("--seed", merge.Error);
        Assert.Contains(b, merge.Error);
        Assert.False(Directory.Exists(Path.Combine(_dir, "m")));

        var notAFolder = await CliRunner.RunAsync("evaluate", "--merge", a, Path.Combine(_dir, "missing"), "--out", Path.Combine(_dir, "m"));
        Assert.Equal(2, notAFolder.ExitCode);
        Assert.Contains("not an evaluation folder", notAFolder.Error);
    }

    [Theory]
    [InlineData("2/2")]
    [InlineData("1")]
    [InlineData("-1/3")]
    [InlineData("0/0")]
    public async Task ABadShardIsRefused(string shard)
    {
        var run = await CliRunner.RunAsync([.. Args(Path.Combine(_dir, "x")), "--shard", shard]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--shard must be I/N", run.Error);
    }

    [Fact]
    public async Task TheReportComparesEveryPointWithEveryOther()
    {
        var run = await CliRunner.RunAsync(Args(_dir));
        Assert.True(run.ExitCode == 0, run.Error);
        var points = Points(_dir);
        var pairs = PairwiseWinRates.Compute(points);
        Assert.Equal(points.Count * (points.Count - 1), pairs.Count);
        var table = pairs.ToDictionary(p => (p.A, p.B));
        foreach (var p in pairs)
            Assert.Equal(1.0, p.WinRate + table[(p.B, p.A)].WinRate, 12);
        // Best-of-16 beats best-of-1 (plain sampling from p) on this reward.
        var strong = table[("bon-n16", "bon-n1")];
        Assert.True(strong.Lower > 0.5, $"bon-n16 vs bon-n1: {strong.WinRate:F3} [{strong.Lower:F3}, {strong.Upper:F3}]");
        string report = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains("## Aligned against aligned", report);
        Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{strong.WinRate:F2} [{strong.Lower:F2}, {strong.Upper:F2}]"), report);
    }
}
