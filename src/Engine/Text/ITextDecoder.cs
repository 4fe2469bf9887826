using System.Text;

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

    /// <summary>
    /// The text that pushing <paramref name="tokens"/> and then flushing would add, without changing this decoder: what a
    /// candidate continuation of the sequence reads as (values score candidates this way without re-decoding the prefix).
    /// </summary>
    string Preview(ReadOnlySpan<int> tokens);
}

/// <summary>
/// <see cref="ITextDecoder"/> over a token-to-bytes function. It holds back only the bytes of a trailing, still incomplete
/// UTF-8 character (at most 3), so its state can be previewed cheaply; for valid UTF-8 the result equals decoding all bytes
/// at once, and invalid bytes become U+FFFD.
/// </summary>
public sealed class Utf8TokenDecoder : ITextDecoder
{
    private static readonly UTF8Encoding Utf8 = new(false, false);
    private readonly Func<int, byte[]> _tokenBytes;
    private byte[] _buffer = new byte[64];
    private int _pending; // bytes of an incomplete trailing character held at the start of _buffer

    /// <param name="tokenBytes">The raw bytes of a token's piece.</param>
    public Utf8TokenDecoder(Func<int, byte[]> tokenBytes) => _tokenBytes = tokenBytes;

    public string Push(int token)
    {
        byte[] bytes = _tokenBytes(token);
        int total = _pending + bytes.Length;
        if (total > _buffer.Length) Array.Resize(ref _buffer, Math.Max(total, _buffer.Length * 2));
        bytes.CopyTo(_buffer, _pending);
        int complete = CompleteLength(_buffer.AsSpan(0, total));
        string text = complete == 0 ? string.Empty : Utf8.GetString(_buffer, 0, complete);
        _buffer.AsSpan(complete, total - complete).CopyTo(_buffer);
        _pending = total - complete;
        return text;
    }

    public string Flush()
    {
        string text = _pending == 0 ? string.Empty : Utf8.GetString(_buffer, 0, _pending);
        _pending = 0;
        return text;
    }

    public string Preview(ReadOnlySpan<int> tokens)
    {
        var bytes = new List<byte>(_pending + tokens.Length * 4);
        for (int i = 0; i < _pending; i++) bytes.Add(_buffer[i]);
        foreach (int t in tokens) bytes.AddRange(_tokenBytes(t));
        return Utf8.GetString(bytes.ToArray());
    }

    /// <summary>Length of the prefix that ends on a character boundary: a trailing lead byte whose sequence is not yet complete is held back.</summary>
    private static int CompleteLength(ReadOnlySpan<byte> bytes)
    {
        int end = bytes.Length;
        for (int i = end - 1; i >= 0 && i >= end - 4; i--)
        {
            byte b = bytes[i];
            if ((b & 0xC0) == 0x80) continue; // continuation byte: keep looking for its lead
            int need = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
            return end - i < need ? i : end;
        }
        return end;
    }
}
