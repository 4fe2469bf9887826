using System.Text.Json;

namespace Tilt.Cli.Tests;

/// <summary><c>tilt export</c>: best-of-n / blockwise / rejection data as JSONL, one whole line per prompt, resumable.</summary>
public sealed class ExportCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-export-").FullName;
    private readonly string _prompts;

    public ExportCommandTests()
    {
        _prompts = Path.Combine(_dir, "prompts.txt");
        File.WriteAllLines(_prompts, ["Once upon a time", "The little dog", "One day, a girl", "Tom and his cat", "Lily saw a bird"]);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static JsonElement[] Lines(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToArray();

    private Task<CliRunner.Outcome> Export(string output, params string[] extra) =>
        CliRunner.RunAsync(["export", "--model", CliRunner.ModelPath, "--prompts", _prompts, "--max-tokens", "24", "--seed", "5", "--out", output, .. extra]);

    [Fact]
    public async Task SoftBestOfNWritesItsCandidatesAndTheDrawnWinner()
    {
        string output = Path.Combine(_dir, "soft.jsonl");
        var run = await Export(output, "--strategy", "soft-bon", "--n", "4", "--lambda", "0.5");
        Assert.True(run.ExitCode == 0, run.Error);
        var lines = Lines(output);
        Assert.Equal(0.5, lines[0].GetProperty("settings").GetProperty("lambda").GetDouble());
        foreach (var p in lines.Skip(1))
        {
            var candidates = p.GetProperty("candidates").EnumerateArray().ToArray();
            Assert.Equal(4, candidates.Length);
            var winner = Assert.Single(candidates, c => c.GetProperty("winner").GetBoolean());
            Assert.Equal(p.GetProperty("winner").GetProperty("text").GetString(), winner.GetProperty("text").GetString());
            Assert.InRange(p.GetProperty("kl").GetProperty("value").GetDouble(), 0, Math.Log(4) - 0.75 + 1e-12);
        }
    }

    [Fact]
    public async Task BestOfNWritesEveryCandidateWithRanksAndTheWinner()
    {
        string output = Path.Combine(_dir, "bon.jsonl");
        var run = await Export(output, "--strategy", "bon", "--n", "6", "--reward", "lexicon:sentiment");
        Assert.True(run.ExitCode == 0, run.Error);
        var lines = Lines(output);
        Assert.Equal("header", lines[0].GetProperty("type").GetString());
        Assert.Equal("tilt-export/1", lines[0].GetProperty("format").GetString());
        Assert.StartsWith("sha256:", lines[0].GetProperty("model").GetProperty("fingerprint").GetString());
        Assert.Equal(6, lines[0].GetProperty("settings").GetProperty("n").GetInt32());
        var prompts = lines.Skip(1).ToArray();
        Assert.Equal([0, 1, 2, 3, 4], prompts.Select(p => p.GetProperty("promptIndex").GetInt32()).Order());
        foreach (var p in prompts)
        {
            var candidates = p.GetProperty("candidates").EnumerateArray().ToArray();
            Assert.Equal(6, candidates.Length);
            var winner = Assert.Single(candidates, c => c.GetProperty("winner").GetBoolean());
            var w = p.GetProperty("winner");
            Assert.Equal(w.GetProperty("candidate").GetInt32(), winner.GetProperty("index").GetInt32());
            Assert.Equal(w.GetProperty("text").GetString(), winner.GetProperty("text").GetString());
            double best = candidates.Max(c => c.GetProperty("reward").GetDouble());
            Assert.Equal(best, w.GetProperty("reward").GetDouble());
            Assert.Equal(1, winner.GetProperty("rank").GetInt32());
            foreach (var c in candidates)
            {
                double r = c.GetProperty("reward").GetDouble();
                Assert.Equal(1 + candidates.Count(o => o.GetProperty("reward").GetDouble() > r), c.GetProperty("rank").GetInt32());
                Assert.True(c.GetProperty("logprob").GetDouble() < 0);
                Assert.InRange(c.GetProperty("tokens").GetArrayLength(), 1, 24);
            }
            Assert.Equal(Math.Log(6) - 5.0 / 6, p.GetProperty("klBound").GetProperty("value").GetDouble(), 9);
            Assert.Equal("best_of_n_estimate", p.GetProperty("kl").GetProperty("method").GetString());
        }

        // Prompt 0 runs with request id 0, as `align` does: the same draw as a solo best-of-n, whatever ran beside it.
        var solo = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "bon", "--n", "6", "--prompt", "Once upon a time",
            "--max-tokens", "24", "--seed", "5", "--reward", "lexicon:sentiment", "--json");
        Assert.True(solo.ExitCode == 0, solo.Error);
        using var soloJson = JsonDocument.Parse(solo.Out);
        var first = prompts.Single(p => p.GetProperty("promptIndex").GetInt32() == 0);
        Assert.Equal(soloJson.RootElement.GetProperty("text").GetString(), first.GetProperty("winner").GetProperty("text").GetString());
    }

    [Fact]
    public async Task ARerunSkipsFinishedPromptsAndDropsATornLine()
    {
        string output = Path.Combine(_dir, "resume.jsonl");
        string[] options = ["--strategy", "bon", "--n", "4"];
        var full = await Export(output, options);
        Assert.True(full.ExitCode == 0, full.Error);
        string[] complete = File.ReadAllLines(output);
        Assert.Equal(6, complete.Length);

        // A crash after two prompts, in the middle of writing the third line.
        File.WriteAllText(output, string.Join("\n", complete.Take(3)) + "\n" + complete[3][..40]);
        var resumed = await Export(output, options);
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.Contains("2 already in", resumed.Error);
        string[] after = File.ReadAllLines(output);
        Assert.Equal(6, after.Length);
        Assert.Equal(complete.Take(3), after.Take(3)); // kept as they were
        Assert.Equal(complete.Skip(1).Order(), after.Skip(1).Order()); // the same data: every prompt once, deterministic
        Assert.Equal(complete[0], after[0]);

        // Other settings are refused, naming the field, and the file is left alone.
        var other = await Export(output, "--strategy", "bon", "--n", "5");
        Assert.Equal(2, other.ExitCode);
        Assert.Contains("other settings (n: 4 in the file, 5 now)", other.Error);
        Assert.Equal(after, File.ReadAllLines(output));

        // Nothing left to do: nothing is appended.
        var again = await Export(output, options);
        Assert.True(again.ExitCode == 0, again.Error);
        Assert.Equal(after, File.ReadAllLines(output));
    }

    [Fact]
    public async Task MinRewardKeepsOnlyPromptsWhoseWinnerClearsIt()
    {
        string output = Path.Combine(_dir, "filtered.jsonl");
        var run = await Export(output, "--strategy", "bon", "--n", "4", "--reward", "lexicon:sentiment", "--min-reward", "1");
        Assert.True(run.ExitCode == 0, run.Error);
        var lines = Lines(output).Skip(1).ToArray();
        Assert.Equal(5, lines.Length);
        foreach (var l in lines)
        {
            if (l.GetProperty("type").GetString() == "filtered")
                Assert.True(l.GetProperty("winnerReward").GetDouble() < 1);
            else
                Assert.True(l.GetProperty("winner").GetProperty("reward").GetDouble() >= 1);
        }
        // Both kinds occur with this seed, so the filter is exercised both ways.
        Assert.Contains(lines, l => l.GetProperty("type").GetString() == "prompt");
        Assert.Contains(lines, l => l.GetProperty("type").GetString() == "filtered");
    }

    [Fact]
    public async Task BlockwiseRecordsEveryBlocksScoresAndRejectionMarksTheRejected()
    {
        string blockwise = Path.Combine(_dir, "blockwise.jsonl");
        var run = await Export(blockwise, "--strategy", "blockwise", "--k", "3", "--block", "6");
        Assert.True(run.ExitCode == 0, run.Error);
        foreach (var p in Lines(blockwise).Skip(1))
        {
            var blocks = p.GetProperty("blocks").EnumerateArray().ToArray();
            Assert.NotEmpty(blocks);
            Assert.Equal(Enumerable.Range(0, blocks.Length), blocks.Select(b => b.GetProperty("block").GetInt32()));
            Assert.All(blocks, b => Assert.Equal(3, b.GetProperty("scores").GetArrayLength()));
            Assert.All(blocks, b => Assert.InRange(b.GetProperty("chosen").GetInt32(), 0, 2));
            Assert.Equal("block_estimate", p.GetProperty("kl").GetProperty("method").GetString());
        }

        string rejection = Path.Combine(_dir, "rejection.jsonl");
        run = await Export(rejection, "--strategy", "rejection", "--n", "8", "--every", "6", "--alpha", "0.5");
        Assert.True(run.ExitCode == 0, run.Error);
        foreach (var p in Lines(rejection).Skip(1))
        {
            var candidates = p.GetProperty("candidates").EnumerateArray().ToArray();
            Assert.Equal(8, candidates.Length);
            var rejected = candidates.Where(c => c.GetProperty("rejected").GetBoolean()).ToArray();
            Assert.NotEmpty(rejected);
            Assert.All(rejected, c => Assert.Equal(JsonValueKind.Null, c.GetProperty("reward").ValueKind));
            Assert.All(rejected, c => Assert.False(c.GetProperty("winner").GetBoolean()));
            int survivors = candidates.Length - rejected.Length;
            Assert.All(rejected, c => Assert.Equal(survivors + 1, c.GetProperty("rank").GetInt32()));
        }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("300")]
    public async Task MaxSequencesOutsideItsRangeIsAnError(string value)
    {
        string output = Path.Combine(_dir, "x.jsonl");
        var run = await Export(output, "--max-sequences", value);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains($"error: --max-sequences must be 1..256, got {value}", run.Error);
        Assert.False(File.Exists(output));
    }

    /// <summary>
    /// docs/export.md: with --kv-f32 a resumed export (the remaining prompts batched without the finished ones) gives
    /// every prompt the candidates a fresh run gives; the cache type is in the header, so a resume with the other is refused.
    /// </summary>
    [Fact]
    public async Task AResumeWithAnF32CacheReproducesAFreshRunAndTheCacheTypeIsPartOfTheSettings()
    {
        string fresh = Path.Combine(_dir, "fresh.jsonl");
        var run = await Export(fresh, "--strategy", "bon", "--n", "4", "--kv-f32", "--max-sequences", "8");
        Assert.True(run.ExitCode == 0, run.Error);
        string[] lines = File.ReadAllLines(fresh).Where(l => l.Length > 0).ToArray();
        Assert.Equal("f32", JsonDocument.Parse(lines[0]).RootElement.GetProperty("settings").GetProperty("kvCache").GetString());

        // As if interrupted after two prompts: the header and their lines, then a rerun decodes the other three.
        string resumed = Path.Combine(_dir, "resumed.jsonl");
        File.WriteAllLines(resumed, lines[..3]);
        run = await Export(resumed, "--strategy", "bon", "--n", "4", "--kv-f32", "--max-sequences", "8");
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Equal(Candidates(fresh), Candidates(resumed));

        var other = await Export(resumed, "--strategy", "bon", "--n", "4", "--max-sequences", "8");
        Assert.Equal(2, other.ExitCode);
        Assert.Contains("kvCache: \"f32\" in the file, \"f16\" now", other.Error);

        static Dictionary<int, string> Candidates(string path) => Lines(path).Skip(1).ToDictionary(
            l => l.GetProperty("promptIndex").GetInt32(),
            l => string.Join('|', l.GetProperty("candidates").EnumerateArray().Select(c => c.GetProperty("tokens").GetRawText())));
    }

    [Fact]
    public async Task BadInputIsAnErrorNamingIt()
    {
        var strategy = await Export(Path.Combine(_dir, "x.jsonl"), "--strategy", "tokenwise");
        Assert.Equal(2, strategy.ExitCode);
        Assert.Contains("--strategy must be bon, soft-bon, blockwise, beam or rejection", strategy.Error);
        string junk = Path.Combine(_dir, "junk.jsonl");
        File.WriteAllText(junk, "not json\n");
        var header = await Export(junk);
        Assert.Equal(2, header.ExitCode);
        Assert.Contains("line 1 is not a tilt-export/1 header", header.Error);
        Assert.Equal("not json\n", File.ReadAllText(junk));
    }
}
