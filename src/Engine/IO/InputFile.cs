using System.Runtime.InteropServices;

namespace Tilt.Engine.IO;

/// <summary>
/// The one way the engine and the command line open the files users give (models, heads, lexicons, prompt and request
/// files, reward catalogs): the path must name an existing regular file (a folder, a FIFO, a device or a socket is
/// refused before it is opened: opening a FIFO blocks until a writer comes, and <c>/dev/zero</c> never ends), and no
/// more than a stated number of bytes is read. Every problem is a <see cref="TiltException"/> of the form
/// "PATH: why" that names what the file was for.
/// </summary>
public static partial class InputFile
{
    /// <summary>The default bound on a text or JSON input (prompts, requests, lexicons, catalogs, tabular models): 256 MiB.</summary>
    public const long DefaultMaxBytes = 256L << 20;

    /// <summary>
    /// Why <paramref name="fullPath"/> cannot be read as a <paramref name="what"/>, or null when it names an existing
    /// regular file (after following symbolic links).
    /// </summary>
    public static string? Problem(string fullPath, string what)
    {
        ArgumentNullException.ThrowIfNull(fullPath);
        if (Directory.Exists(fullPath)) return $"is a folder, not a {what}";
        if (!File.Exists(fullPath)) return $"{what} not found";
        return NonRegularKind(fullPath) is { } kind ? $"is a {kind}, not a regular file (a {what} must be a regular file)" : null;
    }

    /// <summary>
    /// Checks that <paramref name="path"/> names a readable regular file of at most <paramref name="maxBytes"/>
    /// bytes and returns its full path.
    /// </summary>
    /// <exception cref="TiltException">The path is empty, missing, a folder, not a regular file, or too large.</exception>
    public static string Check(string path, string what, long maxBytes = DefaultMaxBytes)
    {
        string full = FullPath(path, what);
        if (Problem(full, what) is { } problem) throw new TiltException($"{full}: {problem}");
        long length = new FileInfo(full).Length;
        if (length > maxBytes)
            throw new TiltException($"{full}: the {what} is {length:N0} bytes, more than the limit of {maxBytes:N0} bytes");
        return full;
    }

    /// <summary>Opens a checked file for reading (see <see cref="Check"/>); the stream ends where the limit does.</summary>
    public static FileStream OpenRead(string path, string what, long maxBytes = DefaultMaxBytes, int bufferSize = 1 << 16)
    {
        string full = Check(path, what, maxBytes);
        try
        {
            return new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{full}: cannot read the {what}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The bytes of a checked file (see <see cref="Check"/>). Reads at most <paramref name="maxBytes"/> + 1 bytes, so a
    /// file that grows while it is read is refused too rather than read without end.
    /// </summary>
    public static byte[] ReadAllBytes(string path, string what, long maxBytes = DefaultMaxBytes)
    {
        using var stream = OpenRead(path, what, maxBytes);
        string full = stream.Name;
        try
        {
            var buffer = new MemoryStream((int)Math.Min(stream.Length, maxBytes));
            var chunk = new byte[1 << 16];
            int n;
            while ((n = stream.Read(chunk)) > 0)
            {
                if (buffer.Length + n > maxBytes)
                    throw new TiltException($"{full}: the {what} is more than the limit of {maxBytes:N0} bytes");
                buffer.Write(chunk, 0, n);
            }
            return buffer.ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{full}: cannot read the {what}: {e.Message}", e);
        }
    }

    /// <summary>"a FIFO", "a character device", ... for a path that exists and is not a regular file or folder; null otherwise.</summary>
    public static string? NonRegularKind(string fullPath)
    {
        if (!OperatingSystem.IsLinux()) return null; // no FIFOs or device paths to meet on Windows; statx is Linux's
        Span<byte> buffer = stackalloc byte[StatxSize];
        buffer.Clear();
        int rc;
        try
        {
            rc = Statx(AtFdCwd, fullPath, 0, StatxType, ref MemoryMarshal.GetReference(buffer));
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return null; // a libc without statx (glibc < 2.28): the open itself decides
        }
        if (rc != 0) return null; // vanished or unreadable: the open that follows says so
        int mode = BitConverter.ToUInt16(buffer.Slice(StatxModeOffset, 2)) & 0xF000;
        return mode switch
        {
            0x8000 or 0x4000 => null, // regular file, folder
            0x1000 => "FIFO (named pipe)",
            0x2000 => "character device",
            0x6000 => "block device",
            0xC000 => "socket",
            _ => "special file",
        };
    }

    private static string FullPath(string path, string what)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new TiltException($"the {what} path is empty");
        try
        {
            return Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new TiltException($"{path}: not a valid path for the {what}: {e.Message}", e);
        }
    }

    // statx(2): struct statx has one layout on every Linux architecture (unlike struct stat); stx_mode is the u16 at
    // offset 28 and the whole struct is 256 bytes.
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;
    private const int StatxSize = 256;
    private const int StatxModeOffset = 28;

    [LibraryImport("libc.so.6", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirFd, string path, int flags, uint mask, ref byte buffer);
}
