using Tilt.Engine.Text;

namespace Tilt.Engine.Tests.Text;

/// <summary>User text files are read strictly: binary or invalid UTF-8 is named, never replaced silently.</summary>
public sealed class TextFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-text-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(byte[] bytes)
    {
        string path = Path.Combine(_dir, "f.txt");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void LinesOfValidUtf8AreReadWithOrWithoutABom()
    {
        Assert.Equal(["a", "café", "b"], TextFile.ReadLines(Write([.. "\uFEFFa\r\ncafé\nb\n"u8]), "prompt file"));
    }

    [Fact]
    public void ANulByteOrInvalidUtf8NamesFileLineAndByte()
    {
        string binary = Write([(byte)'a', (byte)'\n', 0x7f, 0]);
        Assert.Equal($"{binary}:2: the lexicon file is not a text file (a NUL byte at offset 3)", Assert.Throws<TiltException>(() => TextFile.ReadLines(binary, "lexicon file")).Message);
        string latin1 = Write([(byte)'o', (byte)'k', (byte)'\n', (byte)'c', (byte)'a', (byte)'f', 0xE9, (byte)'\n']);
        Assert.Equal($"{latin1}:2: the prompt file is not valid UTF-8 (byte 0xE9 at offset 6)", Assert.Throws<TiltException>(() => TextFile.ReadLines(latin1, "prompt file")).Message);
    }

    [Fact]
    public void QuotedTextHasNoControlCharacters() =>
        Assert.Equal("b\\u0001a\\u001B[31m\\uFFFD", TextFile.Quote("b\u0001a\u001b[31m\uFFFD"));
}
