using System.Runtime.InteropServices;
using System.Text;

namespace Tilt.Interop;

/// <summary>UTF-8 strings across the boundary: strict decoding of the caller's, NUL-terminated encoding of ours.</summary>
internal static unsafe class Utf8
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Decodes a NUL-terminated UTF-8 string; invalid bytes are TILT_ERR_INVALID_ARGUMENT naming the argument.</summary>
    public static string Read(byte* text, string argument) =>
        ReadOrNull(text, argument) ?? throw StatusException.InvalidArgument($"{argument} is NULL");

    /// <summary>As <see cref="Read"/>, but NULL gives null.</summary>
    public static string? ReadOrNull(byte* text, string argument)
    {
        if (text == null) return null;
        var bytes = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(text);
        try
        {
            return Strict.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            string where = e.Index >= 0 ? $" (invalid byte at offset {e.Index})" : "";
            throw StatusException.InvalidArgument($"{argument} is not valid UTF-8{where}");
        }
    }

    /// <summary>UTF-8 bytes of <paramref name="text"/> followed by a NUL.</summary>
    public static byte[] ToNullTerminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }
}
