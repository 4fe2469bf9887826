using System.Text;
using Tilt.Engine.Text;

namespace Tilt.Engine.Tests.Text;

public sealed class Utf8TokenDecoderTests
{
    [Fact]
    public void CharactersSplitAcrossByteTokensComeOutWhole()
    {
        // Byte-level tokens: one token per byte of "héllo 🙂", so é (2 bytes) and 🙂 (4 bytes) are split.
        byte[] bytes = Encoding.UTF8.GetBytes("héllo 🙂!");
        var decoder = new Utf8TokenDecoder(t => [bytes[t]]);
        var pieces = Enumerable.Range(0, bytes.Length).Select(decoder.Push).ToList();
        Assert.Equal("héllo 🙂!", string.Concat(pieces) + decoder.Flush());
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
        Assert.Equal("", pieces[1]);               // first byte of é: nothing yet
        Assert.Equal("é", pieces[2]);
    }

    [Fact]
    public void AnIncompleteCharacterAtTheEndBecomesAReplacementCharacter()
    {
        byte[] bytes = Encoding.UTF8.GetBytes("a🙂");
        var decoder = new Utf8TokenDecoder(t => [bytes[t]]);
        string text = decoder.Push(0) + decoder.Push(1) + decoder.Push(2) + decoder.Flush();
        Assert.Equal("a\uFFFD", text);
    }
}
