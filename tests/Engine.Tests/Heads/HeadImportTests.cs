using Tilt.Engine.Heads;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Tests.Rewards;
using Tilt.Tests;
using static Tilt.Tests.SafetensorsWriter;

namespace Tilt.Engine.Tests.Heads;

/// <summary><see cref="HeadImport"/>: a score head from safetensors into a head file bound to a GGUF backbone.</summary>
[Collection(RewardModelCollection.Name)]
public sealed class HeadImportTests(RewardModelBackbones backbones) : IDisposable
{
    private const int D = RewardModelBackbones.Hidden;
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-import-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Safetensors(params Tensor[] tensors)
    {
        string path = Path.Combine(_dir, $"h{Guid.NewGuid():N}.safetensors");
        SafetensorsWriter.Write(path, tensors);
        return path;
    }

    private HeadFile Import(string file, string tensor, string? bias = null, int? label = null, string? backbone = null) =>
        HeadImport.FromSafetensors(new HeadImportOptions
        {
            SafetensorsPath = file, Tensor = tensor, BiasTensor = bias, Label = label, BackbonePath = backbone ?? backbones.Plain,
        });

    [Theory]
    [InlineData("F32")]
    [InlineData("F16")]
    [InlineData("BF16")]
    public void A_one_label_head_is_imported_exactly_with_the_backbones_fingerprint(string dtype)
    {
        float[] w = RandomValues(D, 3);
        var head = Import(Safetensors(new Tensor("v_head.summary.weight", dtype, [1, D], w), new Tensor("v_head.summary.bias", dtype, [1], [-0.75f])),
            "v_head.summary.weight", "v_head.summary.bias");

        Assert.Equal([.. w, -0.75f], head.Weights); // RandomValues are exact in every dtype
        Assert.Equal(HeadKind.Linear, head.Header.Kind);
        Assert.Equal(HeadRole.Reward, head.Header.Role);
        Assert.Equal(D, head.Header.HiddenSize);
        Assert.Equal(GgufModel.Sha256Fingerprint(backbones.Plain), head.Header.ModelFingerprint);
        Assert.Equal("import", head.Header.Training!["method"].GetString());

        // Written atomically and read back by the ordinary reader, unchanged.
        string path = Path.Combine(_dir, "imported.head");
        head.Write(path);
        Assert.Equal(head.Weights, HeadFile.Read(path).Weights);
        Assert.Single(Directory.GetFiles(_dir, "imported*"));
    }

    [Fact]
    public void A_one_dimensional_weight_without_bias_reads_as_one_label_with_bias_zero()
    {
        float[] w = RandomValues(D, 4);
        var head = Import(Safetensors(new Tensor("summary.weight", "F32", [D], w)), "summary.weight");
        Assert.Equal([.. w, 0f], head.Weights);
    }

    [Fact]
    public void Several_labels_need_a_label_and_the_chosen_row_is_kept()
    {
        float[] w = RandomValues(3 * D, 5);
        string file = Safetensors(new Tensor("score.weight", "F16", [3, D], w), new Tensor("score.bias", "F16", [3], [0.5f, -1f, 2f]));

        var e = Assert.Throws<TiltException>(() => Import(file, "score.weight", "score.bias"));
        Assert.Contains("has 3 labels; choose one with --label 0..2", e.Message);

        var head = Import(file, "score.weight", "score.bias", label: 2);
        Assert.Equal([.. w.AsSpan(2 * D, D).ToArray(), 2f], head.Weights);
        Assert.Contains("label 2 of 3", head.Header.Description);

        Assert.Contains("--label 3 is outside", Assert.Throws<TiltException>(() => Import(file, "score.weight", label: 3)).Message);
    }

    [Fact]
    public void A_shape_that_does_not_match_the_backbone_names_both_sizes()
    {
        string file = Safetensors(new Tensor("score.weight", "F32", [1, D], RandomValues(D, 6)));
        var e = Assert.Throws<TiltException>(() => Import(file, "score.weight", backbone: backbones.Narrow));
        Assert.Contains($"size {D}", e.Message);
        Assert.Contains($"hidden size {RewardModelBackbones.OtherHidden}", e.Message);

        string cube = Safetensors(new Tensor("score.weight", "F32", [1, 1, D], RandomValues(D, 6)));
        Assert.Contains("is [hidden] or [labels, hidden]", Assert.Throws<TiltException>(() => Import(cube, "score.weight")).Message);

        string badBias = Safetensors(new Tensor("score.weight", "F32", [1, D], RandomValues(D, 6)), new Tensor("score.bias", "F32", [2], [1f, 2f]));
        Assert.Contains("need shape [1]", Assert.Throws<TiltException>(() => Import(badBias, "score.weight", "score.bias")).Message);
    }

    [Fact]
    public void A_missing_tensor_or_backbone_is_an_error_naming_it()
    {
        string file = Safetensors(new Tensor("score.weight", "F32", [1, D], RandomValues(D, 7)));
        var e = Assert.Throws<TiltException>(() => Import(file, "classifier.weight"));
        Assert.Contains("no tensor 'classifier.weight'", e.Message);
        Assert.Contains("score.weight F32 [1, 64]", e.Message);

        string missing = Path.Combine(_dir, "missing.gguf");
        Assert.Contains(missing, Assert.ThrowsAny<TiltException>(() => Import(file, "score.weight", backbone: missing)).Message);
    }
}
