using System.Buffers.Binary;
using System.Text.Json;
using Tilt.Engine.Evaluation;
using Tilt.Engine.Requests;

namespace Tilt.Cli.Tests;

public sealed class EvaluateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-eval-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string[] TabularArgs(string output) =>
    [
        "evaluate", "--model", CliRunner.TabularExample(), "--value", "exact-soft", "--top-k", "0", "--quick", "--methods", "bon,blockwise,tokenwise",
        "--max-tokens", "4", "--outputs", "1500", "--base-samples", "2000", "--seed", "5", "--out", output,
    ];

    [Fact]
    public async Task OnATabularModelBestOfNAndTokenwiseCdLieOnTheirExactCurves()
    {
        var run = await CliRunner.RunAsync(TabularArgs(_dir));
        Assert.True(run.ExitCode == 0, run.Error);
        var points = JsonSerializer.Deserialize<List<EvaluatedPoint>>(File.ReadAllText(Path.Combine(_dir, "points.json")),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } })!;
        Assert.Equal(7, points.Count);
        // Each point's 95% interval must contain the exact value (7 intervals: ~30% chance one misses at 95%;
        // widened to 99.9% (z = 3.29) per interval, the family's false-failure rate is < 1%).
        const double widen = 3.29 / 1.96;
        foreach (var p in points.Where(p => p.Method != EvaluationMethod.Blockwise))
        {
            Assert.NotNull(p.WinRateExact);
            double half = (p.WinRateUpper - p.WinRateLower) / 2 * widen;
            Assert.True(Math.Abs(p.WinRate - p.WinRateExact!.Value) <= half, $"{p.Id}: win-rate {p.WinRate:F4} vs exact {p.WinRateExact:F4} (+- {half:F4})");
        }
        // Token-wise CD with the exact soft value samples pi*_beta: its summed drift estimates KL(pi*_beta || p).
        foreach (var p in points.Where(p => p.Method == EvaluationMethod.Tokenwise))
            Assert.True(Math.Abs(p.Kl - p.KlExact!.Value) <= 3.29 * p.KlStandardError + 1e-9, $"{p.Id}: KL {p.Kl:F4} +- {p.KlStandardError:F4} vs exact {p.KlExact:F4}");
        // Best-of-n's exact KL is [M6] and below the bound [M7].
        foreach (var p in points.Where(p => p.Method == EvaluationMethod.BestOfN))
            Assert.True(p.KlExact <= Math.Log(p.N) - (p.N - 1.0) / p.N + 1e-12);
        Assert.Contains(points, p => p.WinRate > 0.7); // the strategies do something
    }

    [Fact]
    public async Task SoftBestOfNPointsMatchTheirExactWinRateAndBoundTheirKl()
    {
        string[] args = ["evaluate", "--model", CliRunner.TabularExample(), "--methods", "soft-bon", "--max-tokens", "4", "--outputs", "1500",
            "--base-samples", "2000", "--seed", "5", "--out", _dir];
        var run = await CliRunner.RunAsync(args);
        Assert.True(run.ExitCode == 0, run.Error);
        var points = JsonSerializer.Deserialize<List<EvaluatedPoint>>(File.ReadAllText(Path.Combine(_dir, "points.json")),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } })!;
        Assert.Equal(2, points.Count); // n = 16 at lambda 1 and 0.25
        foreach (var p in points)
        {
            Assert.Equal(EvaluationMethod.SoftBestOfN, p.Method);
            // 99.9% per interval (two intervals: family false-failure rate < 0.2%).
            double half = (p.WinRateUpper - p.WinRateLower) / 2 * (3.29 / 1.96);
            Assert.True(Math.Abs(p.WinRate - p.WinRateExact!.Value) <= half, $"{p.Id}: win-rate {p.WinRate:F4} vs exact {p.WinRateExact:F4} (+- {half:F4})");
            // The reported estimate's mean bounds the exact KL from above (data processing) and stays below [M7]'s bound.
            Assert.True(p.Kl >= p.KlExact!.Value - 3.29 * p.KlStandardError - 1e-9, $"{p.Id}: KL {p.Kl:F4} below exact {p.KlExact:F4}");
            Assert.True(p.KlExact <= Math.Log(16) - 15.0 / 16 + 1e-12);
        }
        // A colder lambda is closer to best-of-n: a higher win-rate.
        Assert.True(points.Single(p => p.Beta == 0.25).WinRateExact > points.Single(p => p.Beta == 1.0).WinRateExact);
    }

    [Fact]
    public async Task OutputsRoundTripAndThePngIsAnImageOfTheRequestedSize()
    {
        var run = await CliRunner.RunAsync(TabularArgs(_dir));
        Assert.Equal(0, run.ExitCode);
        var fromJson = JsonSerializer.Deserialize<List<EvaluatedPoint>>(File.ReadAllText(Path.Combine(_dir, "points.json")),
            new JsonSerializerOptions { PropertyNameCaseInsensitive = true, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } })!;
        var fromCsv = PointStore.FromCsv(File.ReadAllText(Path.Combine(_dir, "points.csv")));
        // The CSV holds the scalar columns; the per-prompt rewards and times to first text are in points.json only.
        Assert.All(fromJson, p => Assert.NotNull(p.PromptRewards));
        Assert.All(fromJson, p => Assert.NotNull(p.FirstTextMsByPrompt));
        Assert.Equal(fromJson.Select(p => p with { PromptRewards = null, FirstTextMsByPrompt = null }), fromCsv);
        Assert.Equal(File.ReadAllText(Path.Combine(_dir, "points.csv")), PointStore.ToCsv(fromCsv));

        foreach (string name in new[] { "winrate_vs_kl.png", "reward_vs_compute.png" })
        {
            byte[] png = File.ReadAllBytes(Path.Combine(_dir, name));
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
            Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
            Assert.Equal(1000, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16, 4)));
            Assert.Equal(650, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20, 4)));
        }
        Assert.Contains("<svg", File.ReadAllText(Path.Combine(_dir, "winrate_vs_kl.svg"))[..400]);
        string report = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains("sha256:", report);
        Assert.Contains("seed: 5", report);
        Assert.Contains("bon-n16", report);
        Assert.Contains("blockwise-k8-m8", report);
    }

    [Fact]
    public async Task ARerunSkipsFinishedPoints()
    {
        var first = await CliRunner.RunAsync(TabularArgs(_dir));
        Assert.True(first.ExitCode == 0, first.Error);
        // Replace a finished point by a marker, so that recomputing it would show.
        var marker = new EvaluatedPoint
        {
            Id = "bon-n4", Series = "best-of-n", Method = EvaluationMethod.BestOfN, N = 4, Prompts = 1, Outputs = 1,
            WinRate = 0.123, WinRateLower = 0.1, WinRateUpper = 0.2, Kl = 0.5, KlStandardError = 0, KlMethod = "marker",
            MeanReward = 0, BaseMeanReward = 0, TokensEvaluatedPerOutputToken = 1, LatencyMsPerOutput = 1, FirstTextMs = 1, Seconds = 12345,
        };
        PointStore.OpenExisting(_dir).Add(marker);
        var run = await CliRunner.RunAsync(TabularArgs(_dir));
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("(7 already in", run.Error);
        var store = PointStore.OpenExisting(_dir);
        Assert.Equal(7, store.Points.Count);
        Assert.Equal(marker, store.Points.Single(p => p.Id == "bon-n4"));
    }

    [Fact]
    public async Task ABeamSeriesJoinsAFolderOfAnEarlierSweep()
    {
        // A folder evaluated before beam search existed (its methods only) resumes: its points are kept, beam is added.
        var first = await CliRunner.RunAsync(TabularArgs(_dir));
        Assert.True(first.ExitCode == 0, first.Error);
        string[] args = [.. TabularArgs(_dir)];
        args[Array.IndexOf(args, "bon,blockwise,tokenwise")] = "bon,blockwise,tokenwise,beam";
        var run = await CliRunner.RunAsync(args);
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("8 points (7 already in", run.Error);
        var points = PointStore.OpenExisting(_dir).Points;
        Assert.Equal(8, points.Count);
        var beam = Assert.Single(points, p => p.Method == EvaluationMethod.Beam);
        Assert.Equal(("beam-b2-k8-m8", "beam search (B=2, M=8)", 2, 8, 8), (beam.Id, beam.Series, beam.N, beam.K, beam.M));
        Assert.Equal("block_estimate", beam.KlMethod);
        Assert.Null(beam.KlExact);
        Assert.InRange(beam.WinRate, 0, 1);
        Assert.Contains("beam-b2-k8-m8", File.ReadAllText(Path.Combine(_dir, "report.md")));

        var unknown = await CliRunner.RunAsync("evaluate", "--model", CliRunner.TabularExample(), "--quick", "--methods", "beams", "--out", Path.Combine(_dir, "unknown"));
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("(bon, soft-bon, blockwise, tokenwise, rejection, beam)", unknown.Error);
    }

    [Theory]
    [InlineData("--reward", "length:3", "--reward: 'lexicon:sentiment' in the folder, 'length:3' in this run")]
    [InlineData("--seed", "6", "--seed: '5' in the folder, '6' in this run")]
    [InlineData("--max-tokens", "3", "--max-tokens: '4' in the folder, '3' in this run")]
    [InlineData("--outputs", "1000", "--outputs: '1500' in the folder, '1000' in this run")]
    public async Task AFolderMadeWithOtherSettingsIsRefusedUnlessForced(string option, string value, string expected)
    {
        var first = await CliRunner.RunAsync(TabularArgs(_dir));
        Assert.True(first.ExitCode == 0, first.Error);
        string before = File.ReadAllText(Path.Combine(_dir, PointStore.JsonFile));
        string[] changed = [.. Replace(TabularArgs(_dir), option, value)];

        var refused = await CliRunner.RunAsync(changed);
        Assert.Equal(2, refused.ExitCode);
        Assert.StartsWith("error: ", refused.Error);
        Assert.Contains(expected, refused.Error);
        Assert.Contains("--force", refused.Error);
        Assert.Equal(before, File.ReadAllText(Path.Combine(_dir, PointStore.JsonFile)));

        var forced = await CliRunner.RunAsync([.. changed, "--force"]);
        Assert.True(forced.ExitCode == 0, forced.Error);
        Assert.Contains("(0 already in", forced.Error);
        Assert.Contains(value, File.ReadAllText(Path.Combine(_dir, EvaluationIdentity.FileName)));
    }

    [Theory]
    [InlineData("null")]
    [InlineData("[null]")]
    [InlineData("{\"not\": \"a list\"}")]
    public async Task ACorruptPointsFileIsAnErrorAndKept(string content)
    {
        var first = await CliRunner.RunAsync(TabularArgs(_dir));
        Assert.True(first.ExitCode == 0, first.Error);
        string points = Path.Combine(_dir, PointStore.JsonFile);
        File.WriteAllText(points, content);
        var run = await CliRunner.RunAsync(TabularArgs(_dir));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains($"{points}: cannot resume from a corrupt points file", run.Error);
        Assert.Equal(content, File.ReadAllText(points));
    }

    [Fact]
    public async Task AnOutputThatIsAFileOrUnderAFileIsRefusedBeforeAnyWork()
    {
        string file = Path.Combine(_dir, "afile");
        File.WriteAllText(file, "x");
        var onFile = await CliRunner.RunAsync(TabularArgs(file));
        Assert.Equal(2, onFile.ExitCode);
        Assert.Contains($"error: {file}: is a file; give a folder", onFile.Error);
        var under = await CliRunner.RunAsync(TabularArgs(Path.Combine(file, "sub")));
        Assert.Equal(2, under.ExitCode);
        Assert.Contains($"{file} is a file, not a folder", under.Error);
        Assert.DoesNotContain("base samples", under.Error);
    }

    [Fact]
    public async Task AHeadRewardIsRefusedWithTheReasonNotAsAMissingModel()
    {
        var run = await CliRunner.RunAsync("evaluate", "--model", CliRunner.ModelPath, "--reward", "head:" + Path.Combine(_dir, "missing.head"), "--out", _dir);
        Assert.Equal(2, run.ExitCode);
        Assert.DoesNotContain("no model was given", run.Error);
        Assert.Contains("missing.head", run.Error);
    }

    private static IEnumerable<string> Replace(string[] args, string option, string value)
    {
        for (int i = 0; i < args.Length; i++)
        {
            yield return args[i];
            if (args[i] == option) { yield return value; i++; }
        }
        if (!args.Contains(option)) { yield return option; yield return value; }
    }

    [Fact]
    public async Task AnInterruptedSweepKeepsFinishedPointsAndResumes()
    {
        using var cts = new CancellationTokenSource();
        // Cancel as the second point starts (what Ctrl+C does), on the default model where points take a while.
        var stderr = new CancelOnLine("[2/", cts);
        string[] args =
        [
            "evaluate", "--model", CliRunner.ModelPath, "--quick", "--prompts", "1", "--outputs", "1", "--base-samples", "4",
            "--max-tokens", "24", "--out", _dir,
        ];
        int code = await Program.RunAsync(args, new StringWriter(), stderr, cts.Token);
        Assert.Equal(130, code);
        var kept = PointStore.OpenExisting(_dir).Points;
        Assert.Single(kept);
        Assert.Equal("bon-n1", kept[0].Id);

        var resumed = await CliRunner.RunAsync(args);
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.Contains("(1 already in", resumed.Error);
        var all = PointStore.OpenExisting(_dir).Points;
        Assert.Equal(9, all.Count); // the quick sweep: 3 best-of-n, 2 blockwise, 2 token-wise, 1 rejection, 1 beam search
        Assert.Equal(kept[0], all.Single(p => p.Id == "bon-n1"));
        Assert.True(File.Exists(Path.Combine(_dir, "report.md")));
    }

    [Fact]
    public async Task BadPromptCountIsAUserError()
    {
        var run = await CliRunner.RunAsync("evaluate", "--model", CliRunner.ModelPath, "--prompts", "99", "--out", _dir);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--prompts N must be between 1 and", run.Error);
    }

    /// <summary>A stderr that requests cancellation when a line containing a marker is written.</summary>
    private sealed class CancelOnLine(string marker, CancellationTokenSource cts) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.Contains(marker) == true) cts.Cancel();
        }
    }
}
