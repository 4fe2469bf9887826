namespace Tilt.Engine.Text;

/// <summary>
/// Streaming detokenizer for one sequence. Tokens can split a UTF-8 character (byte tokens), so a
/// decoder keeps the incomplete tail and only returns whole characters; concatenating every
/// <see cref="Push"/> result and the final <see cref="Flush"/> equals detokenizing the whole sequence.
/// </summary>
public interface ITextDecoder
{
    /// <summary>Adds one token and returns the text it completes (possibly empty).</summary>
    string Push(int token);

    /// <summary>Returns whatever is left at the end of the sequence (an incomplete character becomes U+FFFD).</summary>
    string Flush();
}

/// <summary>
/// <see cref="ITextDecoder"/> over a token-to-bytes function: bytes go through a stateful UTF-8
/// decoder, which carries partial characters across calls.
/// </summary>
public sealed class Utf8TokenDecoder : ITextDecoder
{
    private readonly Func<int, byte[]> _tokenBytes;
    private readonly System.Text.Decoder _utf8 = new System.Text.UTF8Encoding(false, false).GetDecoder();
    private char[] _chars = new char[64];

    /// <param name="tokenBytes">The raw bytes of a token's piece.</param>
    public Utf8TokenDecoder(Func<int, byte[]> tokenBytes) => _tokenBytes = tokenBytes;

    public string Push(int token) => Decode(_tokenBytes(token), flush: false);

    public string Flush() => Decode([], flush: true);

    private string Decode(byte[] bytes, bool flush)
    {
        int needed = _utf8.GetCharCount(bytes, flush);
        if (needed > _chars.Length) _chars = new char[Math.Max(needed, _chars.Length * 2)];
        int count = _utf8.GetChars(bytes, 0, bytes.Length, _chars, 0, flush);
        return count == 0 ? string.Empty : new string(_chars, 0, count);
    }
}
