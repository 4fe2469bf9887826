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
