using System.Text.Json;

namespace Tilt.Cli.Tests;

/// <summary><c>--stop</c> on generate and align, and <c>stop</c> in batch lines: each output ends at its first stop.</summary>
public sealed class StopCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-stop-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonElement[] Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToArray();

    [Fact]
    public async Task GenerateEndsEachSampleAtItsFirstStop()
    {
        var free = await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--n", "4", "--max-tokens", "60", "--seed", "3", "--json");
        var cut = await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--n", "4", "--max-tokens", "60", "--seed", "3", "--json", "--stop", ".", "--stop", "!");
        Assert.True(cut.ExitCode == 0, cut.Error);
        var f = Lines(free.Out);
        var c = Lines(cut.Out);
        for (int i = 0; i < f.Length; i++)
        {
            string full = f[i].GetProperty("text").GetString()!;
            int at = new[] { full.IndexOf('.'), full.IndexOf('!') }.Where(x => x >= 0).DefaultIfEmpty(-1).Min();
            Assert.Equal(at < 0 ? full : full[..at], c[i].GetProperty("text").GetString());
            if (at >= 0) Assert.Equal("stop", c[i].GetProperty("finish").GetString());
        }
    }

    [Fact]
    public async Task AlignAndBatchLinesHonourStop()
    {
        var single = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "bon", "--n", "4", "--seed", "2", "--max-tokens", "48",
            "--stop", ".", "--include-stop", "--json");
        Assert.True(single.ExitCode == 0, single.Error);
        var alone = Lines(single.Out)[0];
        string text = alone.GetProperty("text").GetString()!;
        if (alone.GetProperty("finish").GetString() == "stop") Assert.EndsWith(".", text);
        int dot = text.IndexOf('.');
        Assert.True(dot < 0 || dot == text.Length - 1, text);

        string requests = Path.Combine(_dir, "requests.jsonl");
        File.WriteAllLines(requests,
        [
            """{"prompt": "Once upon a time", "strategy": "bon", "n": 4, "seed": 2, "max_tokens": 48, "stop": ".", "include_stop": true}""",
            """{"prompt": "Once upon a time", "strategy": "blockwise", "k": 4, "block": 4, "seed": 2, "max_tokens": 48, "stop": [".", "!"]}""",
        ]);
        string output = Path.Combine(_dir, "out.jsonl");
        var batch = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--requests", requests, "--out", output);
        Assert.True(batch.ExitCode == 0, batch.Error);
        var results = Lines(File.ReadAllText(output));
        Assert.Equal(text, results[0].GetProperty("text").GetString());
        Assert.DoesNotContain(".", results[1].GetProperty("text").GetString()!);

        File.WriteAllLines(requests, ["""{"prompt": "x", "stop": 3}"""]);
        var bad = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--requests", requests, "--out", output);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("field 'stop'", bad.Error);
    }
}
