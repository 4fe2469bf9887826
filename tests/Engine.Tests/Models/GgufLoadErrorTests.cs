using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;

namespace Tilt.Engine.Tests.Models;

[Collection(SharedModelCollection.Name)]
public sealed class GgufLoadErrorTests(SharedModel shared) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-gguf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void MissingFileNamesTheFile()
    {
        string path = Path.Combine(_dir, "nope.gguf");
        var e = Assert.Throws<ModelLoadException>(() => GgufModel.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void TextFileIsNotGguf()
    {
        string path = Path.Combine(_dir, "story.gguf");
        File.WriteAllText(path, "Once upon a time there was a file that was not a model.");
        var e = Assert.Throws<ModelLoadException>(() => GgufModel.Load(path));
        Assert.Contains("not a GGUF file", e.Message);
    }

    /// <summary>
    /// Issue 25: values llama.cpp asserts on (GGML_ASSERT aborts the process, exit 134) are refused before native code
    /// sees the file, with the key named. Each case is stories260K with one metadata value replaced.
    /// </summary>
    [Theory]
    [InlineData("llama.block_count", 1000u, "llama.block_count is 1000; llama.cpp loads 1..512 layers")]
    [InlineData("llama.block_count", 0u, "llama.block_count is 0")]
    [InlineData("llama.attention.head_count", 0u, "llama.attention.head_count is 0")]
    [InlineData("llama.attention.head_count", 7u, "llama.attention.head_count (7) must divide llama.embedding_length (64)")]
    [InlineData("llama.attention.head_count_kv", 3u, "llama.attention.head_count_kv (3) must divide llama.attention.head_count (8)")]
    [InlineData("llama.embedding_length", 0u, "llama.embedding_length is 0")]
    [InlineData("llama.context_length", 0u, "llama.context_length is 0")]
    public void HyperParametersLlamaCppAssertsOnAreRefusedFirst(string key, uint value, string expected)
    {
        byte[] bytes = File.ReadAllBytes(shared.Path);
        byte[] name = System.Text.Encoding.UTF8.GetBytes(key);
        int at = -1;
        for (int i = 8; i + name.Length + 8 <= bytes.Length && at < 0; i++)
            if (bytes.AsSpan(i, name.Length).SequenceEqual(name) && BitConverter.ToUInt64(bytes, i - 8) == (ulong)name.Length) at = i + name.Length;
        Assert.True(at > 0, $"{key} is not in the model");
        Assert.True(BitConverter.ToUInt32(bytes, at) is 4 or 5, $"{key} is not a 32-bit integer"); // GGUF types UINT32, INT32
        BitConverter.TryWriteBytes(bytes.AsSpan(at + 4, 4), value);
        string path = Path.Combine(_dir, "patched.gguf");
        File.WriteAllBytes(path, bytes);

        var e = Assert.Throws<ModelLoadException>(() => GgufModel.Load(path));
        Assert.Contains($"{path}: llama.cpp cannot load this model: {expected}", e.Message);
    }

    [Fact]
    public void TheGeneratorRefusesWhatTheLoaderRefuses()
    {
        var shape = new ModelShape("custom", 64, 1000, 2, 2, 8);
        var e = Assert.Throws<ArgumentException>(() => shape.Validate(GgufTensorType.F32, 300));
        Assert.Contains("llama.block_count is 1000", e.Message);
        e = Assert.Throws<ArgumentException>(() => SentencePieceVocabulary.Synthesize(2_000_000_000));
        Assert.Contains("2000000000", e.Message);
        ModelShape.Small15M.Validate(GgufTensorType.F16, 32000);
    }

    [Theory]
    [InlineData(20)]      // inside the fixed header
    [InlineData(4096)]    // inside the metadata (vocabulary strings)
    [InlineData(600_000)] // inside the tensor data
    public void TruncatedFileIsReportedAsTruncated(int keepBytes)
    {
        string path = Path.Combine(_dir, $"cut{keepBytes}.gguf");
        using (var source = File.OpenRead(shared.Path))
        using (var target = File.Create(path))
        {
            var buffer = new byte[keepBytes];
            source.ReadExactly(buffer);
            target.Write(buffer);
        }
        var e = Assert.Throws<ModelLoadException>(() => GgufModel.Load(path));
        Assert.Contains(path, e.Message);
        Assert.True(e.Message.Contains("truncated") || e.Message.Contains("shorter than a GGUF header"), e.Message);
    }
}
