using System.Text.Json;
using Tilt.Engine.Heads;

namespace Tilt.Cli.Tests;

public sealed class AlignCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-align-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("bon", "--n", "4")]
    [InlineData("tokenwise", "--top-k", "8")]
    [InlineData("blockwise", "--k", "4")]
    public async Task EveryStrategyRunsOnTheDefaultModelAndReportsRewardAndKl(string strategy, string option, string value)
    {
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", strategy, option, value,
            "--reward", "lexicon:sentiment", "--max-tokens", "24", "--samples", "2", "--json");
        Assert.True(run.ExitCode == 0, run.Error);
        var lines = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        foreach (var line in lines)
        {
            var o = JsonDocument.Parse(line).RootElement;
            Assert.Equal(strategy, o.GetProperty("strategy").GetString());
            Assert.True(o.GetProperty("kl").GetProperty("value").GetDouble() >= 0);
            Assert.Matches("^[a-z_]+$", o.GetProperty("kl").GetProperty("method").GetString()!);
            Assert.Equal("fine", o.GetProperty("kl").GetProperty("band").GetString());
            Assert.True(o.GetProperty("tokensEvaluated").GetInt64() > 0);
            Assert.True(o.GetProperty("logprob").GetDouble() < 0);
            Assert.True(o.GetProperty("timings").GetProperty("totalMs").GetDouble() > 0);
        }
    }

    [Fact]
    public async Task BlockwiseTextModeStreamsThePromptTheBlocksAndASummary()
    {
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "blockwise", "--max-tokens", "16", "--block", "4");
        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith("Once upon a time", run.Out);
        Assert.Contains("per-block estimate [M19]", run.Out);
        Assert.Contains("reward", run.Out);
    }

    [Fact]
    public async Task SoftBestOfNReportsItsKlEstimateAndTheBound()
    {
        var run = await CliRunner.RunAsync(["align", "--model", CliRunner.ModelPath, "--strategy", "soft-bon", "--n", "4", "--lambda", "0.25",
            "--max-tokens", "12", "--samples", "2", "--json"]);
        Assert.True(run.ExitCode == 0, run.Error);
        var lines = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        foreach (var line in lines)
        {
            var o = JsonDocument.Parse(line).RootElement;
            Assert.Equal("soft-bon", o.GetProperty("strategy").GetString());
            Assert.InRange(o.GetProperty("kl").GetProperty("value").GetDouble(), 0, Math.Log(4) - 0.75 + 1e-12);
        }
    }

    [Theory]
    [InlineData("tokenwise", "exact-soft")]
    [InlineData("tokenwise", "exact")]
    [InlineData("blockwise", "exact")]
    [InlineData("bon", null)]
    [InlineData("soft-bon", null)]
    public async Task TabularModelWithExactValues(string strategy, string? value)
    {
        string[] args = ["align", "--model", CliRunner.TabularExample(), "--prompt", "", "--strategy", strategy, "--reward", "lexicon:sentiment", "--max-tokens", "5", "--top-k", "0", "--json"];
        if (value is not null) args = [.. args, "--value", value];
        var run = await CliRunner.RunAsync(args);
        Assert.True(run.ExitCode == 0, run.Error);
        var o = JsonDocument.Parse(run.Out).RootElement;
        if (value is not null) Assert.StartsWith(value, o.GetProperty("value").GetString());
        Assert.StartsWith("the ", o.GetProperty("text").GetString());
    }

    [Theory]
    [InlineData(new[] { "--strategy", "blockwise", "--k", "0" }, "--k must be between 1 and 256, got 0")]
    [InlineData(new[] { "--strategy", "bon", "--n", "300" }, "n must be between 1 and 256")]
    [InlineData(new[] { "--strategy", "tokenwise", "--beta", "0" }, "beta must be a finite number >= 1E-30")]
    [InlineData(new[] { "--strategy", "tokenwise", "--beta", "NaN" }, "beta must be a finite number >= 1E-30")]
    [InlineData(new[] { "--strategy", "greedy" }, "--strategy must be bon, soft-bon, tokenwise, blockwise, beam or rejection")]
    [InlineData(new[] { "--strategy", "soft-bon", "--lambda", "0" }, "lambda must be a finite number >= 1E-30")]
    [InlineData(new[] { "--reward", "lexicon:/nonexistent/words.txt" }, "/nonexistent/words.txt")]
    [InlineData(new[] { "--reward", "sentiment" }, "sentiment")]
    [InlineData(new[] { "--value", "exact" }, "needs a tabular model")]
    [InlineData(new[] { "--max-tokens", "0" }, "max tokens must be at least 1")]
    public async Task BadInputIsAOneLineErrorWithExitCode2(string[] extra, string expected)
    {
        var run = await CliRunner.RunAsync(["align", "--model", CliRunner.ModelPath, .. extra]);
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: ", run.Error);
        Assert.Contains(expected, run.Error);
        Assert.DoesNotContain("   at ", run.Error);
    }

    [Fact]
    public async Task AValueHeadForAnotherModelIsRefused()
    {
        string path = Path.Combine(_dir, "other.head");
        new HeadFile(new HeadHeader { Kind = HeadKind.Linear, Role = HeadRole.Value, ModelFingerprint = "sha256:feed", HiddenSize = 64 }, new float[65]).Write(path);
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--value-head", path);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("trained on model sha256:feed", run.Error);
    }

    [Fact]
    public async Task AHeadFileThatIsNotAHeadIsRefused()
    {
        string path = Path.Combine(_dir, "junk.head");
        File.WriteAllText(path, "not a head");
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--reward", $"head:{path}");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("not a Tilt head file", run.Error);
    }
}
