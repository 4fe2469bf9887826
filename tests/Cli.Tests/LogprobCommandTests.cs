using System.Text.Json;

namespace Tilt.Cli.Tests;

/// <summary><c>--logprobs N</c> with <c>--json</c>: every token's log p and its N alternatives.</summary>
public sealed class LogprobCommandTests
{
    [Theory]
    [InlineData("generate")]
    [InlineData("align")]
    public async Task Json_lines_carry_per_token_logprobs_that_sum_to_the_sequence_logprob(string command)
    {
        string[] args = command == "generate"
            ? ["generate", "--model", CliRunner.ModelPath, "--n", "2", "--max-tokens", "16", "--seed", "3", "--json", "--logprobs", "2"]
            : ["align", "--model", CliRunner.ModelPath, "--strategy", "blockwise", "--k", "3", "--block", "4", "--max-tokens", "16", "--seed", "3", "--json", "--logprobs", "2"];
        var run = await CliRunner.RunAsync(args);
        Assert.True(run.ExitCode == 0, run.Error);
        foreach (var line in run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var o = JsonDocument.Parse(line).RootElement;
            var lps = o.GetProperty("tokenLogprobs").EnumerateArray().ToArray();
            Assert.Equal(o.GetProperty("tokens").GetArrayLength(), lps.Length);
            Assert.Equal(o.GetProperty("logprob").GetDouble(), lps.Sum(l => l.GetProperty("logprob").GetDouble()), 1e-9);
            Assert.All(lps, l => Assert.Equal(2, l.GetProperty("top").GetArrayLength()));
        }
    }
}
