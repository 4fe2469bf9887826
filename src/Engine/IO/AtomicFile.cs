using System.Collections.Concurrent;
using System.Text;

namespace Tilt.Engine.IO;

/// <summary>
/// The one way the engine and the command line write output files: the content goes to a temporary file in the
/// target's own folder (so the final rename stays on one file system and is atomic), which is renamed over the
/// target only when it is complete. The temporary file is removed on every failure, on cancellation and at process
/// exit, so an interrupted write leaves the old file (or nothing) and no <c>*.tmp</c> behind. Every problem is a
/// <see cref="TiltException"/> of the form "PATH: why".
/// </summary>
public static class AtomicFile
{
    private static readonly ConcurrentDictionary<string, byte> LiveTemporaries = new(StringComparer.Ordinal);

    static AtomicFile() => AppDomain.CurrentDomain.ProcessExit += (_, _) => RemoveLiveTemporaries();

    /// <summary>
    /// Checks, before any work starts, that <paramref name="path"/> can be written as a file: it does not name a
    /// folder or anything else that is not a regular file (a device, a FIFO, a socket: renaming over one would replace
    /// <c>/dev/full</c> by a regular file), its folder exists and accepts new files. Returns the full path.
    /// </summary>
    /// <exception cref="TiltException">The path cannot be written; the message names it and says why.</exception>
    public static string CheckTarget(string path)
    {
        string full = FullPath(path);
        if (EndsInSeparator(path) || Directory.Exists(full))
            throw new TiltException($"{full}: is a folder; give a file name");
        if (InputFile.NonRegularKind(full) is { } kind)
            throw new TiltException($"{full}: is a {kind}, not a regular file; give the name of a file to write");
        string folder = Path.GetDirectoryName(full) ?? throw new TiltException($"{full}: has no parent folder");
        CheckFolderExists(full, folder);
        ProbeWritable(full, folder);
        return full;
    }

    /// <summary>
    /// Makes sure <paramref name="path"/> is a folder that accepts new files, creating it (and its parents) when it
    /// is missing. Returns the full path.
    /// </summary>
    /// <exception cref="TiltException">The path is a file, lies under a file, or cannot be created or written.</exception>
    public static string EnsureFolder(string path)
    {
        string full = FullPath(path).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar);
        if (File.Exists(full)) throw new TiltException($"{full}: is a file; give a folder");
        if (FileAncestor(full) is { } file) throw new TiltException($"{full}: {file} is a file, not a folder");
        try
        {
            Directory.CreateDirectory(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{full}: cannot create the folder: {e.Message}", e);
        }
        ProbeWritable(full, full);
        return full;
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 (no byte-order mark), atomically.</summary>
    public static void WriteAllText(string path, string text, CancellationToken cancellationToken = default) =>
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
            writer.Write(text);
        }, cancellationToken);

    /// <summary>Writes <paramref name="bytes"/>, atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, CancellationToken cancellationToken = default)
    {
        byte[] copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy), cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="write"/> on a new temporary file beside <paramref name="path"/> and renames it over the
    /// target when it returns. <paramref name="write"/> should observe <paramref name="cancellationToken"/> when it is
    /// long; cancellation is also checked before the rename.
    /// </summary>
    /// <exception cref="TiltException">The file cannot be written (the message names it); nothing is left behind.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the target is untouched and the temporary file removed.</exception>
    public static void Write(string path, Action<Stream> write, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(write);
        // The body never awaits, so the replacement completes before GetResult: nothing blocks on another thread.
        Replace(path, temp =>
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                cancellationToken.ThrowIfCancellationRequested();
                stream.Flush(flushToDisk: true);
            }
            return Task.CompletedTask;
        }, cancellationToken).GetAwaiter().GetResult();
    }

    /// <summary>
    /// The asynchronous form of <see cref="Write"/>, for writers that wait on other work between writes (the batch mode
    /// writes each result as soon as it and every one before it is done).
    /// </summary>
    /// <exception cref="TiltException">The file cannot be written (the message names it); nothing is left behind.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the target is untouched and the temporary file removed.</exception>
    public static Task WriteAsync(string path, Func<Stream, Task> write, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(write);
        return Replace(path, async temp =>
        {
            await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
            {
                await write(stream).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                stream.Flush(flushToDisk: true);
            }
        }, cancellationToken);
    }

    /// <summary>
    /// The one replacement both writes share: <paramref name="writeTemporary"/> fills a new temporary file beside the
    /// target, which is then renamed over it; on any failure or cancellation the temporary file is removed.
    /// </summary>
    private static async Task Replace(string path, Func<string, Task> writeTemporary, CancellationToken cancellationToken)
    {
        string full = CheckTarget(path);
        string temp = TemporaryFor(full);
        LiveTemporaries[temp] = 0;
        try
        {
            await writeTemporary(temp).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{full}: cannot write: {e.Message}", e);
        }
        finally
        {
            TryDelete(temp);
            LiveTemporaries.TryRemove(temp, out _);
        }
    }

    /// <summary>Removes every temporary file of a write in progress (the process is about to end: a signal).</summary>
    public static void RemoveTemporaries() => RemoveLiveTemporaries();

    /// <summary>The temporary file of a write: hidden, in the same folder, unique per write.</summary>
    private static string TemporaryFor(string full) =>
        Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");

    private static string FullPath(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new TiltException("the output path is empty");
        try
        {
            return Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new TiltException($"{path}: not a valid path: {e.Message}", e);
        }
    }

    private static bool EndsInSeparator(string path) =>
        path.EndsWith(Path.DirectorySeparatorChar) || path.EndsWith(Path.AltDirectorySeparatorChar);

    private static void CheckFolderExists(string full, string folder)
    {
        if (Directory.Exists(folder)) return;
        if (FileAncestor(folder) is { } file) throw new TiltException($"{full}: {file} is a file, not a folder");
        throw new TiltException($"{full}: the folder {folder} does not exist");
    }

    /// <summary>The nearest existing ancestor of <paramref name="path"/> (itself included) when it is a file.</summary>
    private static string? FileAncestor(string path)
    {
        for (string? p = path; !string.IsNullOrEmpty(p); p = Path.GetDirectoryName(p))
        {
            if (File.Exists(p)) return p;
            if (Directory.Exists(p)) return null;
        }
        return null;
    }

    /// <summary>Creates and removes an empty temporary file: the only reliable test that the folder accepts files.</summary>
    private static void ProbeWritable(string full, string folder)
    {
        string probe = Path.Combine(folder, $".tilt-probe.{Guid.NewGuid():N}.tmp");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(probe);
            throw new TiltException($"{full}: cannot write in {folder}: {e.Message}", e);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the write already failed or succeeded; a leftover cannot be helped here.
        }
    }

    private static void RemoveLiveTemporaries()
    {
        foreach (string temp in LiveTemporaries.Keys) TryDelete(temp);
    }
}
