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

/// <summary><c>tilt score</c>: one pair, or a JSONL file of pairs scored together, with the same numbers.</summary>
public sealed class ScoreCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-score-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_pairs_file_scores_each_line_as_a_single_run_does()
    {
        var single = await CliRunner.RunAsync("score", "--model", CliRunner.ModelPath, "--prompt", "Once upon a time", "--text", ", there was a girl", "--top", "2");
        Assert.True(single.ExitCode == 0, single.Error);
        var one = JsonDocument.Parse(single.Out).RootElement;
        var lps = one.GetProperty("tokenLogprobs").EnumerateArray().ToArray();
        Assert.Equal(one.GetProperty("tokens").GetArrayLength(), lps.Length);
        Assert.Equal(one.GetProperty("logprob").GetDouble(), lps.Sum(l => l.GetProperty("logprob").GetDouble()), 1e-9);
        Assert.False(one.GetProperty("isGreedy").GetBoolean()); // " girl" is not the model's first choice after " a"

        string file = Path.Combine(_dir, "pairs.jsonl");
        File.WriteAllLines(file, ["""{"prompt": "Lily", "text": " went to the park."}""", """{"prompt": "Once upon a time", "text": ", there was a girl"}"""]);
        var batch = await CliRunner.RunAsync("score", "--model", CliRunner.ModelPath, "--pairs", file, "--top", "2");
        Assert.True(batch.ExitCode == 0, batch.Error);
        var lines = batch.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(2, lines.Length);
        Assert.Equal(one.GetProperty("tokens").GetRawText(), lines[1].GetProperty("tokens").GetRawText());
        Assert.Equal(one.GetProperty("logprob").GetDouble(), lines[1].GetProperty("logprob").GetDouble(), 1e-3);
    }
}
