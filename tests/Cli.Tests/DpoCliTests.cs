using System.Text.Json;

namespace Tilt.Cli.Tests;

/// <summary><c>--reward dpo:...</c> and <c>--value dpo:...</c> from the command line, on two tabular models of one vocabulary.</summary>
public sealed class DpoCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-dpo-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Policy()
    {
        // The story chain with other probabilities on the same transitions.
        string json = File.ReadAllText(CliRunner.TabularExample())
            .Replace("\"cat\": 0.5, \"dog\": 0.5", "\"cat\": 0.9, \"dog\": 0.1", StringComparison.Ordinal)
            .Replace("\"happy\": 0.3, \"sad\": 0.7", "\"happy\": 0.8, \"sad\": 0.2", StringComparison.Ordinal);
        string path = Path.Combine(_dir, "policy.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public async Task TheDpoRewardAndValueRunFromTheCommandLine()
    {
        string policy = Policy(), reference = CliRunner.TabularExample();
        var bon = await CliRunner.RunAsync("align", "--model", reference, "--prompt", "", "--strategy", "bon", "--n", "4", "--max-tokens", "4",
            "--reward", $"dpo:{policy},{reference},beta=0.5", "--json");
        Assert.True(bon.ExitCode == 0, bon.Error);
        using var result = JsonDocument.Parse(bon.Out);
        Assert.StartsWith($"dpo:{policy},{reference},beta=0.5", result.RootElement.GetProperty("rewardSpec").GetString());

        var cd = await CliRunner.RunAsync("align", "--model", reference, "--prompt", "", "--strategy", "tokenwise", "--top-k", "0", "--beta", "0.5",
            "--max-tokens", "4", "--reward", "lexicon:sentiment", "--value", $"dpo:{policy},{reference},beta=0.5", "--json", "--samples", "3");
        Assert.True(cd.ExitCode == 0, cd.Error);
        Assert.Equal(3, cd.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains("\"value\":\"dpo:", cd.Out);
    }

    [Fact]
    public async Task AVocabularyMismatchIsAUserErrorNamingBothFiles()
    {
        string reference = CliRunner.TabularExample();
        var run = await CliRunner.RunAsync("align", "--model", reference, "--prompt", "", "--strategy", "bon", "--n", "2", "--max-tokens", "4",
            "--reward", $"dpo:{CliRunner.ModelPath},{reference}");
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: ", run.Error);
        Assert.Contains(CliRunner.ModelPath, run.Error);
        Assert.Contains(reference, run.Error);
        Assert.Contains("do not share a vocabulary", run.Error);
    }
}
