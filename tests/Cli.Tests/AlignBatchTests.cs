using System.Text.Json;

namespace Tilt.Cli.Tests;

/// <summary><c>tilt align --requests FILE --out FILE</c>: every line through one engine, results in input order.</summary>
public sealed class AlignBatchTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-batch-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Requests(params string[] lines)
    {
        string path = Path.Combine(_dir, "requests.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    private static JsonElement[] Results(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToArray();

    [Fact]
    public async Task ResultsComeInInputOrderAndEqualSingleRuns()
    {
        string requests = Requests(
            """{"prompt": "Once upon a time", "strategy": "blockwise", "k": 4, "block": 8, "seed": 3, "max_tokens": 24, "reward": "lexicon:positive", "value_head": null}""",
            """{"prompt": "The cat", "strategy": "bon", "n": 4, "seed": 1, "max_tokens": 20}""",
            "",
            """{"prompt": "Lily", "strategy": "tokenwise", "top_k": 6, "seed": 2, "max_tokens": 12, "samples": 2}""");
        string output = Path.Combine(_dir, "results.jsonl");
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--requests", requests, "--out", output, "--reward", "lexicon:sentiment");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("tokens/s", run.Error);
        var results = Results(output);
        Assert.Equal([1, 2, 4, 4], results.Select(r => r.GetProperty("line").GetInt32()));
        Assert.Equal([0, 0, 0, 1], results.Select(r => r.GetProperty("index").GetInt32()));
        Assert.Equal("lexicon:sentiment", results[1].GetProperty("rewardSpec").GetString()); // absent field: the CLI's option
        Assert.Equal("lexicon:positive", results[0].GetProperty("rewardSpec").GetString());
        // KL method and band spelled as the HTTP API spells them (snake_case).
        Assert.Equal("best_of_n_estimate", results[1].GetProperty("kl").GetProperty("method").GetString());
        Assert.Equal("fine", results[1].GetProperty("kl").GetProperty("band").GetString());

        // The same request alone through `align --json` gives the same output.
        var single = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "blockwise", "--k", "4", "--block", "8", "--seed", "3",
            "--max-tokens", "24", "--reward", "lexicon:positive", "--json");
        Assert.True(single.ExitCode == 0, single.Error);
        var alone = JsonDocument.Parse(single.Out).RootElement;
        Assert.Equal(alone.GetProperty("text").GetString(), results[0].GetProperty("text").GetString());
        Assert.Equal(alone.GetProperty("reward").GetDouble(), results[0].GetProperty("reward").GetDouble());

        // One at a time (the baseline) gives the same results.
        string serial = Path.Combine(_dir, "serial.jsonl");
        var oneByOne = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--requests", requests, "--out", serial, "--reward", "lexicon:sentiment", "--concurrency", "1");
        Assert.True(oneByOne.ExitCode == 0, oneByOne.Error);
        Assert.Equal(results.Select(r => r.GetProperty("text").GetString()), Results(serial).Select(r => r.GetProperty("text").GetString()));
    }

    [Fact]
    public async Task AStrategyAliasRunsAsItsStrategyAndIsReportedByItsName()
    {
        string requests = Requests("""{"prompt": "The cat", "strategy": "Best-Of-N", "n": 2, "seed": 1, "max_tokens": 8}""");
        string output = Path.Combine(_dir, "results.jsonl");
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--requests", requests, "--out", output);
        Assert.True(run.ExitCode == 0, run.Error);
        var result = Results(output).Single();
        Assert.Equal("bon", result.GetProperty("strategy").GetString());
        Assert.Equal("best_of_n_estimate", result.GetProperty("kl").GetProperty("method").GetString());
    }

    /// <summary>Issue 25: the engine is sized with the forced prefix, so a long prefill that align --prefill takes works in a batch too.</summary>
    [Fact]
    public async Task APrefillLongerThanThePromptAndMaxTokensFitsTheBatchEngine()
    {
        const string Prefill = " there was a big dog. The dog liked to play with a ball and a cat and a bird and a fish";
        string requests = Requests($$"""{"prompt": "Once", "strategy": "bon", "n": 2, "max_tokens": 8, "prefill": "{{Prefill}}"}""");
        string output = Path.Combine(_dir, "results.jsonl");
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--requests", requests, "--out", output, "--reward", "length:8");
        Assert.True(run.ExitCode == 0, run.Error);
        var single = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "bon", "--n", "2", "--max-tokens", "8",
            "--prompt", "Once", "--prefill", Prefill, "--reward", "length:8", "--json");
        Assert.True(single.ExitCode == 0, single.Error);
        Assert.Equal(JsonDocument.Parse(single.Out).RootElement.GetProperty("text").GetString(), Results(output).Single().GetProperty("text").GetString());
    }

    [Theory]
    [InlineData("""{"prompt": 3}""", "line 2: field 'prompt': expected a string")]
    [InlineData("""{"prompt": "x", "n": "four", "strategy": "bon"}""", "line 2: field 'n': expected an integer")]
    [InlineData("""{"prompt": "x", "strategy": "bon", "n": 999}""", "line 2: field 'n': n must be between 1 and 256")]
    [InlineData("""{"prompt": "x", "strategy": "greedy"}""", "line 2: field 'strategy'")]
    [InlineData("""{"prompt": "x", "strategy": "blockwise", "selection": "best"}""", "line 2: field 'selection': selection must be argmax or sample, got 'best'")]
    [InlineData("""{"prompt": "x", "strategy": "rejection", "max_tokens": 8, "every": 8}""", "line 2: field 'every': every must be between 1 and 7")]
    [InlineData("""{"prompt": "x", "colour": "red"}""", "line 2: unknown field 'colour'")]
    [InlineData("""{"prompt": "x", "reward": "lexicon:/nonexistent/w.txt"}""", "line 2: field 'reward'")]
    [InlineData("""[1, 2]""", "line 2: a request line must be a JSON object")]
    [InlineData("""{"prompt": """, "line 2:")]
    public async Task AMalformedLineIsNamedAndTheLinesBeforeItAreKept(string bad, string expected)
    {
        string requests = Requests("""{"prompt": "Once upon a time", "strategy": "bon", "n": 2, "max_tokens": 8}""", bad,
            """{"prompt": "Once upon a time", "strategy": "bon", "n": 2, "max_tokens": 8}""");
        string output = Path.Combine(_dir, "results.jsonl");
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--requests", requests, "--out", output);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(expected, run.Error);
        Assert.DoesNotContain("   at ", run.Error);
        Assert.Equal([1], Results(output).Select(r => r.GetProperty("line").GetInt32()));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public async Task BatchModeNeedsAnOutputFile()
    {
        var run = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--requests", Requests("""{"prompt": "x"}"""));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--out", run.Error);
    }
}
