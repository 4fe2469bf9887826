using System.Text.Json;
using Tilt.Engine.Heads;
using Tilt.Tests;
using static Tilt.Tests.SafetensorsWriter;

namespace Tilt.Cli.Tests;

/// <summary>
/// <c>tilt head import</c> and <c>--reward rm:</c> end to end: a backbone from <c>tilt make-model</c>, a head written as
/// safetensors by the test, imported, then used by best-of-n on stories260K.
/// </summary>
public sealed class HeadImportCommandTests : IDisposable
{
    private const int D = 64;
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-head-import-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<string> Backbone(int dim)
    {
        string path = Path.Combine(_dir, $"backbone{dim}.gguf");
        var run = await CliRunner.RunAsync("make-model", "--dim", dim.ToString(), "--layers", "2", "--heads", "2", "--ff", "128",
            "--vocab-from", CliRunner.ModelPath, "--type", "f32", "--seed", "3", "--out", path);
        Assert.True(run.ExitCode == 0, run.Error);
        return path;
    }

    private string Safetensors(params Tensor[] tensors)
    {
        string path = Path.Combine(_dir, "model.safetensors");
        SafetensorsWriter.Write(path, tensors);
        return path;
    }

    [Fact]
    public async Task An_imported_head_scores_best_of_n_through_rm()
    {
        string backbone = await Backbone(D);
        float[] w = RandomValues(2 * D, 11);
        string file = Safetensors(new Tensor("score.weight", "BF16", [2, D], w), new Tensor("score.bias", "BF16", [2], [0.5f, -0.5f]));
        string head = Path.Combine(_dir, "rm.head");

        var run = await CliRunner.RunAsync("head", "import", "--safetensors", file, "--tensor", "score.weight", "--bias-tensor", "score.bias",
            "--label", "1", "--model", backbone, "--out", head);
        Assert.True(run.ExitCode == 0, run.Error);
        Assert.Equal(head, run.Out.Trim());
        var imported = HeadFile.Read(head);
        Assert.Equal([.. w.AsSpan(D, D).ToArray(), -0.5f], imported.Weights);
        Assert.Equal(HeadRole.Reward, imported.Header.Role);

        var bon = await CliRunner.RunAsync("align", "--strategy", "bon", "--n", "4", "--max-tokens", "8", "--seed", "2",
            "--reward", $"rm:{backbone},{head}", "--json");
        Assert.True(bon.ExitCode == 0, bon.Error);
        using var result = JsonDocument.Parse(bon.Out);
        Assert.Equal($"rm:{backbone},{head}", result.RootElement.GetProperty("rewardSpec").GetString());
        Assert.True(double.IsFinite(result.RootElement.GetProperty("reward").GetDouble()));

        // The batch mode reads the same spec from a line.
        string requests = Path.Combine(_dir, "requests.jsonl"), results = Path.Combine(_dir, "results.jsonl");
        File.WriteAllText(requests, JsonSerializer.Serialize(new { prompt = "Once upon a time", strategy = "bon", n = 4, max_tokens = 8, reward = $"rm:{backbone},{head}" }) + "\n");
        var batch = await CliRunner.RunAsync("align", "--requests", requests, "--out", results);
        Assert.True(batch.ExitCode == 0, batch.Error);
        using var line = JsonDocument.Parse(File.ReadAllLines(results).Single());
        Assert.True(double.IsFinite(line.RootElement.GetProperty("reward").GetDouble()), line.RootElement.ToString());
    }

    [Fact]
    public async Task Bad_input_exits_2_naming_the_problem_and_writes_nothing()
    {
        string backbone = await Backbone(D);
        string head = Path.Combine(_dir, "out.head");
        async Task<CliRunner.Outcome> Import(string file, string tensor, params string[] more) =>
            await CliRunner.RunAsync(["head", "import", "--safetensors", file, "--tensor", tensor, "--model", backbone, "--out", head, .. more]);

        string twoLabels = Safetensors(new Tensor("score.weight", "F16", [2, D], RandomValues(2 * D, 1)));
        var run = await Import(twoLabels, "score.weight");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("has 2 labels; choose one with --label 0..1", run.Error);

        run = await Import(twoLabels, "classifier.weight", "--label", "0");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("no tensor 'classifier.weight'; the file's tensors are score.weight F16 [2, 64]", run.Error);

        string narrow = Safetensors(new Tensor("score.weight", "F32", [1, 32], RandomValues(32, 2)));
        run = await Import(narrow, "score.weight");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("size 32", run.Error);
        Assert.Contains($"hidden size {D}", run.Error);

        run = await Import(Path.Combine(_dir, "missing.safetensors"), "score.weight");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("missing.safetensors", run.Error);

        File.WriteAllBytes(Path.Combine(_dir, "short.safetensors"), [0, 1, 0, 0, 0, 0, 0, 0, (byte)'{']);
        run = await Import(Path.Combine(_dir, "short.safetensors"), "score.weight");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("header length", run.Error);

        run = await Import(twoLabels, "score.weight", "--label", "-1");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("label must be >= 0", run.Error);

        Assert.False(File.Exists(head));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp*"));

        // A head for another backbone's width is refused by rm: with both sizes named.
        string other = await Backbone(32);
        run = await CliRunner.RunAsync("head", "import", "--safetensors", narrow, "--tensor", "score.weight", "--model", other, "--out", head);
        Assert.True(run.ExitCode == 0, run.Error);
        run = await CliRunner.RunAsync("align", "--strategy", "bon", "--n", "2", "--max-tokens", "4", "--reward", $"rm:{backbone},{head}");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("the head reads hidden states of size 32 but the model's are 64", run.Error);
    }
}
