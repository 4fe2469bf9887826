using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Engine.Training;
using Tilt.Kernels;

namespace Tilt.Engine.Tests.Training;

/// <summary>Trained heads through the head file format (docs/head-file.md): round trip, corruption, mismatch.</summary>
public sealed class HeadFileTests : IDisposable
{
    private const int D = 12;
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-headfile-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static FeatureScaling Scaling(Random random) =>
        new(Enumerable.Range(0, D).Select(_ => (float)random.NextDouble()).ToArray(), Enumerable.Range(0, D).Select(_ => (float)(0.5 + random.NextDouble())).ToArray());

    private static TrainedHead Linear(int seed)
    {
        var random = new Random(seed);
        return TrainedHead.Linear(Scaling(random), Enumerable.Range(0, D).Select(_ => random.NextDouble() - 0.5).ToArray(), 0.3);
    }

    private static TrainedHead Mlp(int seed, HeadActivation activation)
    {
        var random = new Random(seed);
        const int units = 5;
        float R() => (float)(random.NextDouble() - 0.5);
        return TrainedHead.Mlp(Scaling(random), Enumerable.Range(0, units * D).Select(_ => R()).ToArray(), Enumerable.Range(0, units).Select(_ => R()).ToArray(),
            Enumerable.Range(0, units).Select(_ => R()).ToArray(), -0.2, activation);
    }

    private static ModelInfo Model(string fingerprint = "sha256:abc", int d = D) => new()
    {
        Kind = ModelKind.Tabular,
        Path = "/models/m.json",
        VocabularySize = 4,
        BosToken = null,
        EosToken = 0,
        HiddenSize = d,
        TrainedContextSize = 100,
        Fingerprint = fingerprint,
        Description = "test",
    };

    private string Write(TrainedHead head, string name = "h.head")
    {
        string path = Path.Combine(_dir, name);
        var training = new Dictionary<string, JsonElement> { ["method"] = JsonSerializer.SerializeToElement("cd-fudge") };
        head.ToHeadFile(HeadRole.Value, "sha256:abc", "last", "a test head", training).Write(path);
        return path;
    }

    public static TheoryData<string> Kinds => new() { "linear", "relu", "gelu" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void AWrittenHeadScoresLikeTheTrainedOneThroughTheKernelHead(string kind)
    {
        var head = kind == "linear" ? Linear(1) : Mlp(2, kind == "relu" ? HeadActivation.Relu : HeadActivation.Gelu);
        var file = HeadFile.Read(Write(head));
        Assert.Equal(HeadRole.Value, file.Header.Role);
        Assert.Equal("cd-fudge", file.Header.Training!["method"].GetString());
        Assert.True(file.Header.Normalized);
        var kernel = file.ToKernelHead();
        var back = TrainedHead.FromHeadFile(file);
        var random = new Random(3);
        const int rows = 9;
        var hidden = Enumerable.Range(0, rows * D).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        var scores = new float[rows];
        kernel.Score(hidden, rows, scores);
        var scratch = new float[head.ScratchSize];
        for (int i = 0; i < rows; i++)
        {
            double expected = head.Predict(hidden.AsSpan(i * D, D), scratch);
            // The kernel folds the normalization into float32 weights: a few ulps of the terms' magnitude.
            Assert.Equal(expected, scores[i], 2e-5 * (1 + Math.Abs(expected)) * D);
            Assert.Equal(expected, back.Predict(hidden.AsSpan(i * D, D), scratch), 1e-6); // the file stores the bias in float32
        }
        var value = new HeadValue(file, Model(), "h.head");
        var values = new double[rows];
        value.Evaluate(null, hidden, rows, values);
        for (int i = 0; i < rows; i++) Assert.Equal(scores[i], values[i], 1e-6);
    }

    [Fact]
    public void CorruptFilesAreClearErrors()
    {
        string path = Write(Linear(4));
        byte[] good = File.ReadAllBytes(path);
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(good.AsSpan(8, 4));

        void Expect(byte[] bytes, string message)
        {
            string bad = Path.Combine(_dir, "bad.head");
            File.WriteAllBytes(bad, bytes);
            var e = Assert.Throws<TiltException>(() => HeadFile.Read(bad));
            Assert.Contains(message, e.Message);
            Assert.Contains("bad.head", e.Message);
        }

        Expect([.. "NOTAHEAD"u8, .. good[8..]], "not a Tilt head file");
        Expect(good[..^4], "truncated or corrupt head file");
        var flipped = (byte[])good.Clone();
        flipped[^3] ^= 0x40;
        Expect(flipped, "do not match their sha256");
        var header = (byte[])good.Clone();
        header[12] = (byte)'[';
        Expect(header, "corrupt head header");
        string json = Encoding.UTF8.GetString(good, 12, headerLength).Replace("tilt-head/1", "tilt-head/9");
        Expect([.. good[..12], .. Encoding.UTF8.GetBytes(json), .. good[(12 + headerLength)..]], "head format 'tilt-head/9' is not supported");
        var length = (byte[])good.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(length.AsSpan(8, 4), good.Length);
        Expect(length, "header length");
    }

    public static TheoryData<string, string, string> BadFields => new()
    {
        { "weightsSha256", "null", "field 'weightsSha256' is null" },
        { "weightsSha256", "\"xyz\"", "field 'weightsSha256' is 'xyz'" },
        { "modelFingerprint", "null", "field 'modelFingerprint' is null" },
        { "format", "null", "field 'format' is null" },
        { "feature", "null", "field 'feature' is null" },
        { "feature", "\"first\"", "field 'feature' is 'first'" },
        { "hiddenSize", "0", "field 'hiddenSize' is 0" },
        { "hiddenSize", "2000000000", "field 'hiddenSize' is 2000000000" },
        { "hiddenUnits", "3", "field 'hiddenUnits' is 3; a linear head has 0" },
        { "heldOutByPrefixLength", "[null]", "field 'heldOutByPrefixLength[0]' is null" },
        { "heldOutByPrefixLength", """[{"from":4,"to":2}]""", "field 'heldOutByPrefixLength[0]' covers 4..2" },
        { "heldOutByPrefixLength", """[{"from":0,"to":0},{"from":0,"to":3}]""", "field 'heldOutByPrefixLength[1]' covers 0..3" },
        { "heldOutByPrefixLength", """[{"from":0,"to":0,"rSquared":1.5}]""", "field 'heldOutByPrefixLength[0]'.rSquared is 1.5" },
        { "heldOutByPrefixLength", """[{"from":1,"to":3,"prefixRewardR2":-0.1}]""", "field 'heldOutByPrefixLength[0]'.prefixRewardR2 is -0.1" },
        { "heldOutByPrefixLength", """[{"from":1,"to":3,"rows":-1}]""", "field 'heldOutByPrefixLength[0]'.rows is -1" },
    };

    /// <summary>Every field of the header is checked, with an error that names it (JSON alone lets null and numbers through).</summary>
    [Theory]
    [MemberData(nameof(BadFields))]
    public void EveryHeaderFieldIsValidatedByName(string field, string json, string expected)
    {
        string path = Write(Linear(6));
        byte[] good = File.ReadAllBytes(path);
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(good.AsSpan(8, 4));
        var header = System.Text.Json.Nodes.JsonNode.Parse(good.AsSpan(12, headerLength))!.AsObject();
        header[field] = System.Text.Json.Nodes.JsonNode.Parse(json);
        byte[] bytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        var length = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        string bad = Path.Combine(_dir, "bad.head");
        File.WriteAllBytes(bad, [.. good[..8], .. length, .. bytes, .. good[(12 + headerLength)..]]);
        var e = Assert.Throws<TiltException>(() => HeadFile.Read(bad));
        Assert.Contains($"{bad}: invalid head header: {expected}", e.Message);
    }

    /// <summary>
    /// docs/head-file.md: enums are names, and format, kind and role must be present; numbers (even valid ones such as
    /// "kind": 0) and missing fields are refused with the field named, never read as a default.
    /// </summary>
    [Theory]
    [InlineData("kind", "0", "$.kind")]
    [InlineData("kind", "7", "$.kind")]
    [InlineData("role", "1", "$.role")]
    [InlineData("activation", "0", "$.activation")]
    [InlineData("format", null, "'format'")]
    [InlineData("kind", null, "'kind'")]
    [InlineData("role", null, "'role'")]
    public void EnumNumbersAndMissingRequiredFieldsAreRefused(string field, string? json, string expected)
    {
        string path = Write(Linear(6));
        byte[] good = File.ReadAllBytes(path);
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(good.AsSpan(8, 4));
        var header = System.Text.Json.Nodes.JsonNode.Parse(good.AsSpan(12, headerLength))!.AsObject();
        if (json is null) header.Remove(field);
        else header[field] = System.Text.Json.Nodes.JsonNode.Parse(json);
        byte[] bytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        var length = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        string bad = Path.Combine(_dir, "bad.head");
        File.WriteAllBytes(bad, [.. good[..8], .. length, .. bytes, .. good[(12 + headerLength)..]]);
        var e = Assert.Throws<TiltException>(() => HeadFile.Read(bad));
        Assert.Contains($"{bad}: corrupt head header", e.Message);
        Assert.Contains(expected, e.Message);
    }

    /// <summary>The writer checks what the reader checks: no head can be written that its own reader refuses.</summary>
    [Fact]
    public void AHeadTheReaderWouldRefuseCannotBeMade()
    {
        var header = new HeadHeader { Kind = HeadKind.Mlp, ModelFingerprint = "sha256:abc", HiddenSize = 4, HiddenUnits = HeadHeader.MaxHiddenUnits + 1 };
        var e = Assert.Throws<ArgumentException>(() => new HeadFile(header, new float[header.WeightCount]));
        Assert.Contains($"field 'hiddenUnits' is {HeadHeader.MaxHiddenUnits + 1}", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdamOptions { HiddenUnits = HeadHeader.MaxHiddenUnits + 1 });
    }

    /// <summary>Finite weights that overflow once the standardization is folded in are an error naming the file.</summary>
    [Fact]
    public void WeightsThatOverflowWhenFoldedNameTheFile()
    {
        var header = new HeadHeader { Kind = HeadKind.Linear, ModelFingerprint = "sha256:abc", HiddenSize = D, Normalized = true };
        var weights = new float[header.WeightCount];
        weights.AsSpan(D, D).Fill(1e-30f);      // std: tiny but > 0
        weights.AsSpan(2 * D, D).Fill(1e30f);   // w / std = 1e60 overflows float
        string path = Path.Combine(_dir, "overflow.head");
        new HeadFile(header, weights).Write(path);
        var e = Assert.Throws<TiltException>(() => HeadValue.Load(path, Model()));
        Assert.Contains($"{path}: invalid head weights", e.Message);
        e = Assert.Throws<TiltException>(() => HeadReward.Load(path, Model()));
        Assert.Contains($"{path}: invalid head weights", e.Message);
    }

    [Fact]
    public void AWeightCountBeyondIntIsReportedWithoutOverflow()
    {
        var header = new HeadHeader { Kind = HeadKind.Mlp, ModelFingerprint = "sha256:abc", HiddenSize = HeadHeader.MaxHiddenSize, HiddenUnits = HeadHeader.MaxHiddenUnits, Normalized = true };
        Assert.Equal(2L * HeadHeader.MaxHiddenSize + (long)HeadHeader.MaxHiddenUnits * HeadHeader.MaxHiddenSize + 2L * HeadHeader.MaxHiddenUnits + 1, header.WeightCount);
        Assert.True(header.WeightCount > int.MaxValue);
    }

    [Fact]
    public void AHeadForAnotherModelIsRefused()
    {
        var file = HeadFile.Read(Write(Linear(5)));
        Assert.Contains("trained on model sha256:abc", Assert.Throws<TiltException>(() => new HeadValue(file, Model("sha256:other"), "h.head")).Message);
        Assert.Contains("hidden states of size 12", Assert.Throws<TiltException>(() => new HeadValue(file, Model(d: 64), "h.head")).Message);
    }
}
