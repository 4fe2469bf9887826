using System.Text.Json;

namespace Tilt.Cli.Tests;

public sealed class GenerateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task SixteenParallelSamplesAreSixteenDifferentStoriesAsJson()
    {
        var run = await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--n", "16", "--max-tokens", "48", "--seed", "7", "--json");
        Assert.Equal(0, run.ExitCode);
        var lines = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(16, lines.Length);
        var samples = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(16, samples.Select(s => s.GetProperty("text").GetString()).Distinct().Count());
        Assert.All(samples, s =>
        {
            Assert.True(s.GetProperty("logprob").GetDouble() < 0);
            Assert.InRange(s.GetProperty("tokens").GetArrayLength(), 1, 48);
            Assert.Contains(s.GetProperty("finish").GetString(), new[] { "eos", "length" });
        });
    }

    [Fact]
    public async Task TextOutputOfOneSampleStreamsThePromptAndContinuation()
    {
        var run = await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--prompt", "Once upon a time", "--max-tokens", "20", "--seed", "1");
        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith("Once upon a time", run.Out);
        Assert.Contains("tokens/s", run.Error);
    }

    [Fact]
    public async Task TabularModelJsonIsAcceptedAsModel()
    {
        var run = await CliRunner.RunAsync("generate", "--model", CliRunner.TabularExample(), "--prompt", "", "--n", "8", "--max-tokens", "10", "--json");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal(8, run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains("\"text\":\"the ", run.Out);
    }

    [Fact]
    public async Task MissingModelFile()
    {
        string path = Path.Combine(_dir, "missing.gguf");
        await AssertUserError(["generate", "--model", path], path, "not found");
    }

    [Fact]
    public async Task FileThatIsNotGguf()
    {
        string path = Path.Combine(_dir, "notes.gguf");
        File.WriteAllText(path, "just some text");
        await AssertUserError(["generate", "--model", path], path, "not a GGUF file");
    }

    [Fact]
    public async Task TruncatedGguf()
    {
        string path = Path.Combine(_dir, "half.gguf");
        var bytes = File.ReadAllBytes(CliRunner.ModelPath);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        await AssertUserError(["generate", "--model", path], path, "truncated");
    }

    [Fact]
    public async Task TabularJsonWhoseProbabilitiesDoNotSumToOne()
    {
        string path = Path.Combine(_dir, "bad.json");
        File.WriteAllText(path, File.ReadAllText(CliRunner.TabularExample()).Replace("\"the\": 1.0", "\"the\": 0.5"));
        await AssertUserError(["generate", "--model", path, "--prompt", ""], path, "sum to 0.5");
    }

    [Fact]
    public async Task TabularJsonWithAnUnknownToken()
    {
        string path = Path.Combine(_dir, "unknown.json");
        File.WriteAllText(path, File.ReadAllText(CliRunner.TabularExample()).Replace("\"home\":  { \"<eos>\": 1.0 }", "\"home\":  { \"<eos>\": 0.5, \"cow\": 0.5 }"));
        await AssertUserError(["generate", "--model", path, "--prompt", ""], "transitions.home", "unknown token 'cow'");
    }

    [Fact]
    public async Task PromptLongerThanTheContext()
    {
        string prompt = string.Join(' ', Enumerable.Repeat("the big dog ran to the park", 300));
        await AssertUserError(["generate", "--model", CliRunner.ModelPath, "--prompt", prompt], "context", "prompt");
    }

    [Fact]
    public async Task MoreThan256Samples() =>
        await AssertUserError(["generate", "--model", CliRunner.ModelPath, "--n", "257"], "256", "257");

    [Theory]
    [InlineData("NaN")]
    [InlineData("-0.5")]
    public async Task NegativeOrNaNTemperature(string value) =>
        await AssertUserError(["generate", "--model", CliRunner.ModelPath, "--temperature", value], "Temperature", value);

    [Fact]
    public async Task TopPOutOfRange() =>
        await AssertUserError(["generate", "--model", CliRunner.ModelPath, "--top-p", "1.5"], "TopP", "1.5");

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    [InlineData(int.MaxValue)]
    public async Task ThreadCountsOutsideOneToTheLogicalCpusAreUserErrors(int threads)
    {
        int value = threads == int.MaxValue ? Tilt.Engine.Models.CpuTopology.LogicalCpus + 1 : threads;
        await AssertUserError(["generate", "--model", CliRunner.ModelPath, "--threads", value.ToString()], "--threads", value.ToString());
    }

    [Fact]
    public async Task VerboseReportsTheThreadCount()
    {
        var run = await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--max-tokens", "2", "--threads", "1", "--verbose");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("llama.cpp threads: 1 (", run.Error);
        var byDefault = await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--max-tokens", "2", "--verbose");
        Assert.Contains($"llama.cpp threads: {Tilt.Engine.Models.CpuTopology.PhysicalCores} (default, ", byDefault.Error);
    }

    [Fact]
    public async Task UnparsableNumberIsAParseError()
    {
        var run = await CliRunner.RunAsync("generate", "--n", "many");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("many", run.Error);
    }

    private static async Task AssertUserError(string[] args, params string[] mentions)
    {
        var run = await CliRunner.RunAsync(args);
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: ", run.Error);
        foreach (string m in mentions) Assert.Contains(m, run.Error);
        Assert.DoesNotContain("   at ", run.Error); // no stack trace for user errors
        Assert.Single(run.Error.Trim().Split('\n'));
    }
}
