using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;

namespace Tilt.Engine.Tests.Models;

public sealed class SyntheticModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-synthetic-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(GgufTensorType.F32)]
    [InlineData(GgufTensorType.F16)]
    [InlineData(GgufTensorType.Q8_0)]
    public void AWrittenModelLoadsInLlamaCppAndDecodes(GgufTensorType type)
    {
        var shape = new ModelShape("tiny", Dim: 64, Layers: 2, Heads: 4, KvHeads: 2, FeedForward: 96);
        string path = Path.Combine(_dir, $"tiny-{type}.gguf");
        SyntheticModel.Write(path, shape, SentencePieceVocabulary.Synthesize(400), type, seed: 3);

        var header = GgufHeader.Read(path);
        Assert.Equal(2 + 2 * 9 + 1, header.Tensors.Count); // embeddings, output norm, output + 9 per layer
        Assert.Equal("llama", header.GetString("general.architecture"));

        using var model = GgufModel.Load(path);
        Assert.Equal(400, model.Info.VocabularySize);
        Assert.Equal(64, model.Info.HiddenSize);
        Assert.Equal(2, model.Info.EosToken);
        using var session = model.CreateSession(new SessionOptions { MaxSequences = 2, MaxSequenceLength = 32 });
        session.Prefill(0, model.Tokenize("hello world"));
        session.CopySequence(0, 1);
        session.Step([0, 1], [300, 301]);
        Assert.All(session.Logits.ToArray(), v => Assert.True(float.IsFinite(v)));
        Assert.False(session.Logits[..400].SequenceEqual(session.Logits[400..]));
    }

    [Fact]
    public void TheSameSeedWritesTheSameBytes()
    {
        var shape = new ModelShape("tiny", 32, 1, 2, 2, 64);
        string a = Path.Combine(_dir, "a.gguf"), b = Path.Combine(_dir, "b.gguf"), c = Path.Combine(_dir, "c.gguf");
        var vocab = SentencePieceVocabulary.Synthesize(300);
        SyntheticModel.Write(a, shape, vocab, GgufTensorType.F16, seed: 5);
        SyntheticModel.Write(b, shape, vocab, GgufTensorType.F16, seed: 5);
        SyntheticModel.Write(c, shape, vocab, GgufTensorType.F16, seed: 6);
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
        Assert.NotEqual(File.ReadAllBytes(a), File.ReadAllBytes(c));
    }

    [Fact]
    public void TheVocabularyOfStories260KCanBeCopied()
    {
        var vocab = SentencePieceVocabulary.CopyFrom(Tilt.Tests.TestPaths.DefaultModel);
        Assert.Equal(512, vocab.Tokens.Length);
        Assert.Equal(1, vocab.Bos);
        Assert.Equal(2, vocab.Eos);
    }

    [Theory]
    [InlineData(64, 2, 3, 3, 96, "heads (3) must divide dim (64)")]
    [InlineData(64, 2, 4, 3, 96, "kv heads (3) must divide heads (4)")]
    [InlineData(60, 2, 4, 4, 96, "must be even")]
    [InlineData(64, 0, 4, 4, 96, "layers must be at least 1")]
    public void BadShapesGiveClearErrors(int dim, int layers, int heads, int kvHeads, int ff, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => new ModelShape("bad", dim, layers, heads, kvHeads, ff).Validate(GgufTensorType.F16));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Q8NeedsWidthsDivisibleBy32()
    {
        var e = Assert.Throws<ArgumentException>(() => new ModelShape("q", 48, 1, 4, 4, 96).Validate(GgufTensorType.Q8_0));
        Assert.Contains("divisible by 32", e.Message);
    }

    [Fact]
    public void PresetParameterCountsMatchTheirNames()
    {
        Assert.InRange(ModelShape.Small15M.Parameters(32000), 24e6, 25e6);   // 15M with tied embeddings; untied here
        Assert.InRange(ModelShape.Base110M.Parameters(32000), 130e6, 135e6);  // 110M tied
        Assert.InRange(ModelShape.Large1B.Parameters(32000), 1.0e9, 1.2e9);
    }
}
