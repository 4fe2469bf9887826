using System.Text.Json;

namespace Tilt.Cli.Tests;

/// <summary>Early rejection and forced prefixes from the command line.</summary>
public sealed class RejectionAndPrefillCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-rejection-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task RejectionDecodesFewerTokensThanBestOfNAndReportsItsDecisions()
    {
        string[] common = ["align", "--model", CliRunner.ModelPath, "--n", "16", "--max-tokens", "48", "--reward", "lexicon:sentiment", "--seed", "2", "--json"];
        var rejection = await CliRunner.RunAsync([.. common, "--strategy", "rejection", "--alpha", "0.5", "--every", "8"]);
        var bon = await CliRunner.RunAsync([.. common, "--strategy", "bon"]);
        Assert.True(rejection.ExitCode == 0, rejection.Error);
        Assert.True(bon.ExitCode == 0, bon.Error);
        var r = JsonDocument.Parse(rejection.Out).RootElement;
        var b = JsonDocument.Parse(bon.Out).RootElement;
        Assert.Equal("rejection", r.GetProperty("strategy").GetString());
        Assert.Equal([8, 4, 2, 1], r.GetProperty("survivorsPerDecision").EnumerateArray().Select(x => x.GetInt32()));
        Assert.True(r.GetProperty("tokensEvaluated").GetInt64() < b.GetProperty("tokensEvaluated").GetInt64() / 2);
        Assert.Equal(b.GetProperty("klBound").GetProperty("value").GetDouble(), r.GetProperty("klBound").GetProperty("value").GetDouble(), 12);
    }

    [Theory]
    [InlineData(new[] { "--alpha", "1" }, "alpha must be in [0, 1)")]
    [InlineData(new[] { "--alpha", "-0.5" }, "alpha must be in [0, 1)")]
    [InlineData(new[] { "--every", "48" }, "--every must be between 1 and 47 (a decision interval shorter than max tokens, 48), got 48")]
    [InlineData(new[] { "--n", "0" }, "n must be between 1 and 256")]
    [InlineData(new[] { "--decide-at", "48" }, "--decide-at must be between 1 and 47 (a decision length shorter than max tokens, 48), got 48")]
    [InlineData(new[] { "--decide-at", "soon" }, "--decide-at must be a number of tokens or auto, got 'soon'")]
    [InlineData(new[] { "--decide-at", "auto" }, "--decide-at auto needs --calibration FILE")]
    public async Task BadRejectionSettingsAreOneLineErrors(string[] extra, string expected)
    {
        var run = await CliRunner.RunAsync(["align", "--model", CliRunner.ModelPath, "--strategy", "rejection", "--max-tokens", "48", .. extra]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(expected, run.Error);
    }

    [Fact]
    public async Task CalibrateWritesCorrelationsThatAutoReadsBack()
    {
        string file = Path.Combine(_dir, "calibration.json");
        var run = await CliRunner.RunAsync("rejection", "calibrate", "--model", CliRunner.ModelPath, "--reward", "lexicon:sentiment", "--prompts", "2",
            "--samples", "32", "--max-tokens", "16", "--n", "8", "--alpha", "0.5", "--out", file);
        Assert.True(run.ExitCode == 0, run.Error);
        var root = JsonDocument.Parse(File.ReadAllText(file)).RootElement;
        Assert.Equal([1, 2, 4, 8], root.GetProperty("correlations").EnumerateArray().Select(c => c.GetProperty("tokens").GetInt32()));
        Assert.Equal(4, root.GetProperty("budget").GetArrayLength());
        Assert.Contains("| prefix tokens t |", run.Out);

        // auto: the file's length for (n 8, alpha 0.5), or a refusal that names it when no length reaches 0.9.
        var auto = root.GetProperty("auto")[0].GetProperty("decideAt");
        var align = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "rejection", "--n", "8", "--alpha", "0.5",
            "--decide-at", "auto", "--calibration", file, "--max-tokens", "16", "--json");
        if (auto.ValueKind == JsonValueKind.Null)
        {
            Assert.Equal(2, align.ExitCode);
            Assert.Contains("no calibrated length keeps best-of-8's winner", align.Error);
        }
        else
        {
            Assert.True(align.ExitCode == 0, align.Error);
            Assert.Single(JsonDocument.Parse(align.Out).RootElement.GetProperty("survivorsPerDecision").EnumerateArray());
        }
        var other = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "rejection", "--n", "16", "--alpha", "0.5",
            "--decide-at", "auto", "--calibration", file, "--max-tokens", "16");
        Assert.Equal(2, other.ExitCode);
        Assert.Contains("has no entry for --n 16 --alpha 0.5", other.Error);
    }

    [Fact]
    public async Task AForcedPrefixStartsTheResponseAndIsExcludedFromTheLogProbability()
    {
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "bon", "--n", "4", "--max-tokens", "16",
            "--reward", "lexicon:sentiment", "--prefill", "the sad dog cried", "--json");
        Assert.True(run.ExitCode == 0, run.Error);
        var o = JsonDocument.Parse(run.Out).RootElement;
        Assert.StartsWith(" the sad dog cried", o.GetProperty("text").GetString());
        int forced = o.GetProperty("forcedTokens").GetInt32();
        Assert.True(forced >= 4);
        Assert.InRange(o.GetProperty("tokens").GetArrayLength(), forced + 1, forced + 16);
        // The reward reads the whole response: "sad" and "cried" count against it.
        Assert.True(o.GetProperty("reward").GetDouble() <= 0);
    }

    [Fact]
    public async Task EvaluateWithPrefillsWritesRewardByOpeningLength()
    {
        string prefills = Path.Combine(_dir, "prefills.txt");
        File.WriteAllLines(prefills, ["the dog was sad", "the dog was sad and cried and cried"]);
        var run = await CliRunner.RunAsync("evaluate", "--model", CliRunner.ModelPath, "--quick", "--methods", "bon", "--prompts", "1", "--outputs", "4",
            "--base-samples", "8", "--max-tokens", "16", "--prefills", prefills, "--out", _dir);
        Assert.True(run.ExitCode == 0, run.Error);
        var csv = File.ReadAllLines(Path.Combine(_dir, "prefill-points.csv"));
        Assert.Equal(1 + 3 * 3, csv.Length); // header + 3 openings (none, two forced) x 3 best-of-n points
        Assert.True(File.Exists(Path.Combine(_dir, "reward_vs_prefix.png")));
        Assert.Contains("how deep is the alignment", File.ReadAllText(Path.Combine(_dir, "prefills.md")));
    }

    [Fact]
    public async Task EvaluateRunsRejectionPoints()
    {
        var run = await CliRunner.RunAsync("evaluate", "--model", CliRunner.ModelPath, "--quick", "--methods", "rejection", "--prompts", "1", "--outputs", "2",
            "--base-samples", "8", "--max-tokens", "16", "--out", _dir);
        Assert.True(run.ExitCode == 0, run.Error);
        var points = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "points.json"))).RootElement.EnumerateArray().ToList();
        var point = Assert.Single(points);
        Assert.Equal("rejection-n16-a0.5-e8", point.GetProperty("id").GetString());
    }
}
