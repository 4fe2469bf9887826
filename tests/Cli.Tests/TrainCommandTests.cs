using System.Text.Json;
using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Loading;

namespace Tilt.Cli.Tests;

public sealed class TrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    [Fact]
    public async Task TrainValueOnTheTabularModelWritesAHeadAndAHeldOutReport()
    {
        string head = PathOf("story.head");
        var run = await CliRunner.RunAsync("train", "value", "--model", CliRunner.TabularExample(), "--reward", "lexicon:sentiment",
            "--rollouts", "400", "--max-tokens", "8", "--out", head, "--json");
        Assert.True(run.ExitCode == 0, run.Error);
        var o = JsonDocument.Parse(run.Out).RootElement;
        Assert.Equal("cd-fudge", o.GetProperty("method").GetString());
        Assert.Equal(400, o.GetProperty("rollouts").GetInt32());
        Assert.Equal(80, o.GetProperty("heldOut").GetProperty("rollouts").GetInt32());
        var buckets = o.GetProperty("heldOut").GetProperty("byPrefixLength").EnumerateArray().ToArray();
        Assert.Equal(0, buckets[0].GetProperty("from").GetInt32());
        Assert.True(o.GetProperty("heldOut").GetProperty("rSquared").GetDouble() > 0);
        Assert.Contains("rollouts", run.Error);
        Assert.Contains("100%", run.Error);

        var file = HeadFile.Read(head);
        using var model = LanguageModel.Load(CliRunner.TabularExample());
        Assert.Equal(HeadRole.Value, file.Header.Role);
        Assert.Equal(model.Info.Fingerprint, file.Header.ModelFingerprint);
        Assert.True(file.Header.Normalized);
        Assert.Equal("last", file.Header.Feature);
        Assert.Equal("cd-fudge", file.Header.Training!["method"].GetString());
    }

    [Fact]
    public async Task AlignWarnsWhenTheHeadExplainsLessThanThePrefixRewardAtTheBlockSize()
    {
        string head = PathOf("story.head");
        var train = await CliRunner.RunAsync("train", "value", "--model", CliRunner.TabularExample(), "--reward", "lexicon:sentiment",
            "--rollouts", "300", "--max-tokens", "8", "--out", head);
        Assert.True(train.ExitCode == 0, train.Error);
        Assert.Contains("R^2        MSE  prefix r^2", train.Out);
        Assert.NotNull(HeadFile.Read(head).Header.HeldOutByPrefixLength);

        // The same weights with metrics set by hand: below the baseline at 4-7 tokens, above it at 1-3, none stored.
        var file = HeadFile.Read(head);
        HeldOutAccuracy[] metrics = [new() { From = 1, To = 3, RSquared = 0.4, PrefixRewardR2 = 0.2 }, new() { From = 4, To = 7, RSquared = 0.01, PrefixRewardR2 = 0.5 }];
        string weak = PathOf("weak.head"), bare = PathOf("bare.head");
        new HeadFile(file.Header with { HeldOutByPrefixLength = metrics }, file.Weights).Write(weak);
        new HeadFile(file.Header with { HeldOutByPrefixLength = null }, file.Weights).Write(bare);
        string[] align = ["align", "--model", CliRunner.TabularExample(), "--prompt", "", "--reward", "lexicon:sentiment", "--max-tokens", "8", "--json"];

        var blockwise = await CliRunner.RunAsync([.. align, "--strategy", "blockwise", "--block", "4", "--value-head", weak]);
        Assert.True(blockwise.ExitCode == 0, blockwise.Error);
        Assert.Contains($"warning: value head {weak} explains R^2=0.01 at length 4 (held-out prefixes of 4-7 tokens), below the prefix reward's 0.5; " +
            "the prefix reward may steer better (docs/training.md)", blockwise.Error);
        var tokenwise = await CliRunner.RunAsync([.. align, "--strategy", "tokenwise", "--top-k", "0", "--value-head", weak]);
        Assert.True(tokenwise.ExitCode == 0, tokenwise.Error);
        Assert.DoesNotContain("warning:", tokenwise.Error); // length 1: 0.4 >= 0.2
        var old = await CliRunner.RunAsync([.. align, "--strategy", "blockwise", "--block", "4", "--value-head", bare]);
        Assert.True(old.ExitCode == 0, old.Error);
        Assert.DoesNotContain("warning:", old.Error);

        // evaluate's quick sweep decides blockwise at M = 8, past the table: its last range, once for both K.
        var evaluate = await CliRunner.RunAsync("evaluate", "--model", CliRunner.TabularExample(), "--value-head", weak, "--quick",
            "--methods", "blockwise", "--max-tokens", "4", "--outputs", "10", "--base-samples", "20", "--out", PathOf("eval"));
        Assert.True(evaluate.ExitCode == 0, evaluate.Error);
        Assert.Single(evaluate.Error.Split('\n'), line => line.StartsWith($"warning: value head {weak} explains R^2=0.01 at length 8 (held-out prefixes of 4-7 tokens)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CdQWithATwoLayerHeadReportsItsIterations()
    {
        string head = PathOf("q.head");
        var run = await CliRunner.RunAsync("train", "value", "--model", CliRunner.TabularExample(), "--reward", "lexicon:sentiment",
            "--method", "q", "--head", "mlp", "--units", "8", "--epochs", "3", "--iterations", "2", "--top-k", "10",
            "--rollouts", "200", "--max-tokens", "8", "--out", head);
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Contains("CD-Q mlp value head", run.Out);
        Assert.Contains("iteration 0 is the CD-FUDGE start", run.Out);
        Assert.Contains("held-out R^2", run.Out);
        Assert.Equal(HeadKind.Mlp, HeadFile.Read(head).Header.Kind);
    }

    [Fact]
    public async Task FromARewardToAValueHeadToBlockwiseCdOnTheDefaultModel()
    {
        string head = PathOf("sentiment.head");
        var train = await CliRunner.RunAsync("train", "value", "--model", CliRunner.ModelPath, "--reward", "lexicon:sentiment",
            "--rollouts", "48", "--max-tokens", "12", "--out", head);
        Assert.True(train.ExitCode == 0, train.Error);
        Assert.Contains("held-out R^2 of V(prefix) against the realized reward", train.Out);
        Assert.Matches(@"\n    0 +\d", train.Out);

        var align = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "blockwise", "--reward", "lexicon:sentiment",
            "--value-head", head, "--max-tokens", "16", "--json");
        Assert.True(align.ExitCode == 0, align.Error);
        Assert.StartsWith("head:", JsonDocument.Parse(align.Out).RootElement.GetProperty("value").GetString());
    }

    [Fact]
    public async Task PairsFromTheBaseModelTrainABradleyTerryRewardThatAlignLoads()
    {
        string pairs = PathOf("pairs.jsonl"), head = PathOf("bt.head");
        var data = await CliRunner.RunAsync("data", "pairs", "--model", CliRunner.ModelPath, "--reward", "length:8", "--n", "30",
            "--max-tokens", "12", "--noise", "bt", "--scale", "0.5", "--out", pairs);
        Assert.True(data.ExitCode == 0, data.Error);
        Assert.Contains("wrote 30 pairs", data.Out);
        var lines = File.ReadAllLines(pairs);
        Assert.Equal(30, lines.Length);
        foreach (string line in lines)
        {
            var o = JsonDocument.Parse(line).RootElement;
            foreach (string field in new[] { "prompt", "chosen", "rejected" }) Assert.Equal(JsonValueKind.String, o.GetProperty(field).ValueKind);
            Assert.True(double.IsFinite(o.GetProperty("chosenReward").GetDouble()));
        }

        var train = await CliRunner.RunAsync("train", "reward", "--model", CliRunner.ModelPath, "--pairs", pairs, "--out", head, "--json");
        Assert.True(train.ExitCode == 0, train.Error);
        var report = JsonDocument.Parse(train.Out).RootElement;
        Assert.Equal("bradley-terry", report.GetProperty("method").GetString());
        Assert.Equal(6, report.GetProperty("heldOut").GetProperty("examples").GetInt32());
        Assert.InRange(report.GetProperty("heldOut").GetProperty("accuracy").GetDouble(), 0, 1);
        Assert.Equal(HeadRole.Reward, HeadFile.Read(head).Header.Role);

        var bon = await CliRunner.RunAsync("align", "--model", CliRunner.ModelPath, "--strategy", "bon", "--n", "4", "--reward", $"head:{head}", "--max-tokens", "12", "--json");
        Assert.True(bon.ExitCode == 0, bon.Error);
    }

    [Fact]
    public async Task LabeledTextsTrainAClassifier()
    {
        string labels = PathOf("labels.jsonl"), head = PathOf("cls.head");
        var data = await CliRunner.RunAsync("data", "labels", "--model", CliRunner.TabularExample(), "--reward", "lexicon:sentiment",
            "--n", "200", "--max-tokens", "8", "--threshold", "0", "--out", labels);
        Assert.True(data.ExitCode == 0, data.Error);
        Assert.Contains("wrote 200 labeled texts", data.Out);
        var first = JsonDocument.Parse(File.ReadLines(labels).First()).RootElement;
        Assert.True(first.GetProperty("label").ValueKind is JsonValueKind.True or JsonValueKind.False);
        Assert.Equal(JsonValueKind.Number, first.GetProperty("reward").ValueKind);

        var train = await CliRunner.RunAsync("train", "reward", "--model", CliRunner.TabularExample(), "--labels", labels, "--out", head);
        Assert.True(train.ExitCode == 0, train.Error);
        Assert.Contains("classifier reward head", train.Out);
        Assert.Contains("majority guess", train.Out);
    }

    [Theory]
    [InlineData(new[] { "train", "value", "--reward", "lexicon:sentiment", "--method", "sarsa" }, "--method must be fudge or q")]
    [InlineData(new[] { "train", "value", "--reward", "lexicon:sentiment", "--head", "tree" }, "--head must be linear or mlp")]
    [InlineData(new[] { "train", "value", "--reward", "lexicon:sentiment", "--rollouts", "0" }, "rollouts must be between 1")]
    [InlineData(new[] { "train", "value", "--reward", "lexicon:sentiment", "--held-out", "0.95" }, "HeldOutFraction must be between 0 and 0.9")]
    [InlineData(new[] { "train", "value", "--reward", "nonsense" }, "nonsense")]
    [InlineData(new[] { "train", "reward" }, "give exactly one of --pairs FILE or --labels FILE")]
    [InlineData(new[] { "train", "reward", "--pairs", "/nonexistent/pairs.jsonl" }, "/nonexistent/pairs.jsonl: file not found")]
    [InlineData(new[] { "train", "reward", "--pairs", "x.jsonl", "--feature", "max" }, "--feature must be last or mean")]
    [InlineData(new[] { "data", "pairs", "--reward", "length:5", "--noise", "gaussian" }, "--noise must be none or bt")]
    [InlineData(new[] { "data", "pairs", "--reward", "length:5", "--scale", "0" }, "the noise scale must be finite and > 0")]
    public async Task BadInputIsAOneLineErrorWithExitCode2(string[] args, string expected)
    {
        var run = await CliRunner.RunAsync([.. args, "--model", CliRunner.TabularExample(), "--out", PathOf("out")]);
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: ", run.Error);
        Assert.Contains(expected, run.Error);
        Assert.DoesNotContain("   at ", run.Error);
    }

    [Fact]
    public async Task ABadLineInAPairFileIsNamedByFileAndLine()
    {
        string pairs = PathOf("bad.jsonl");
        File.WriteAllLines(pairs, ["{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}", "{\"prompt\": \"a\", \"chosen\": 3, \"rejected\": \"c\"}"]);
        var run = await CliRunner.RunAsync("train", "reward", "--model", CliRunner.TabularExample(), "--pairs", pairs, "--out", PathOf("x.head"));
        Assert.Equal(2, run.ExitCode);
        Assert.Contains($"{pairs}:2: field \"chosen\" must be a string", run.Error);
    }

    [Fact]
    public async Task AnOutputFolderThatDoesNotExistFailsBeforeAnyWork()
    {
        var run = await CliRunner.RunAsync("train", "value", "--model", CliRunner.TabularExample(), "--reward", "lexicon:sentiment", "--out", "/nonexistent/dir/v.head");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("does not exist", run.Error);
        Assert.DoesNotContain("rollouts", run.Error.Replace("error:", ""), StringComparison.Ordinal);
    }
}
