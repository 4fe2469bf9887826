using System.Globalization;
using System.Text;
using Tilt.Engine.IO;

namespace Tilt.Engine.Text;

/// <summary>
/// Reads the text files users give (lexicons, prompt files, datasets) strictly: invalid UTF-8 or a NUL byte (a binary
/// file) is an error naming the file, line and byte, never replaced silently by U+FFFD; and <see cref="Quote"/> keeps
/// control characters out of the messages that echo a file's content.
/// </summary>
public static class TextFile
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The lines of a UTF-8 text file (a leading byte-order mark is dropped).</summary>
    /// <param name="path">The file.</param>
    /// <param name="what">What the file is, for messages ("lexicon file", "prompt file").</param>
    /// <exception cref="TiltException">The file is missing, not a regular file, larger than <see cref="InputFile.DefaultMaxBytes"/>, unreadable, binary or not UTF-8.</exception>
    public static string[] ReadLines(string path, string what)
    {
        string text = ReadAllText(path, what);
        return text.ReplaceLineEndings("\n").Split('\n') is var lines && lines.Length > 0 && lines[^1].Length == 0 ? lines[..^1] : lines;
    }

    /// <summary>The text of a UTF-8 file (a leading byte-order mark is dropped), read as strictly as <see cref="ReadLines"/>.</summary>
    /// <exception cref="TiltException">The file is missing, not a regular file, larger than <see cref="InputFile.DefaultMaxBytes"/>, unreadable, binary or not UTF-8.</exception>
    public static string ReadAllText(string path, string what)
    {
        string full = InputFile.Check(path, what);
        byte[] bytes = InputFile.ReadAllBytes(full, what);

        int nul = Array.IndexOf(bytes, (byte)0);
        if (nul >= 0)
            throw new TiltException($"{full}:{LineOf(bytes, nul)}: the {what} is not a text file (a NUL byte at offset {nul})");
        ReadOnlySpan<byte> body = bytes.AsSpan().StartsWith("\uFEFF"u8) ? bytes.AsSpan(3) : bytes;
        string text;
        try
        {
            text = Strict.GetString(body);
        }
        catch (DecoderFallbackException e)
        {
            int offset = (bytes.Length - body.Length) + Math.Max(0, e.Index);
            throw new TiltException($"{full}:{LineOf(bytes, offset)}: the {what} is not valid UTF-8 (byte 0x{bytes[Math.Min(offset, bytes.Length - 1)]:X2} at offset {offset})", e);
        }
        return text;
    }

    /// <summary>Text for a message: control characters other than TAB (and U+FFFD) as \uXXXX escapes, cut after 80 characters.</summary>
    public static string Quote(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var sb = new StringBuilder();
        foreach (char c in text.Length > 80 ? text[..80] : text)
        {
            if ((char.IsControl(c) && c != '\t') || c == '\uFFFD') sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            else sb.Append(c);
        }
        if (text.Length > 80) sb.Append("...");
        return sb.ToString();
    }

    private static int LineOf(byte[] bytes, int offset)
    {
        int line = 1;
        for (int i = 0; i < offset && i < bytes.Length; i++)
            if (bytes[i] == (byte)'\n') line++;
        return line;
    }
}
