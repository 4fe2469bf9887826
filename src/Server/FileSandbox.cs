using Tilt.Engine;
using Tilt.Engine.IO;

namespace Tilt.Server;

/// <summary>
/// Decides which files a request may make the server read: none, or (with --allow-files DIR) regular files inside
/// DIR once every symbolic link on the way has been resolved, so neither "../" nor a link can leave it.
/// </summary>
internal sealed class FileSandbox
{
    private readonly string? _root;

    public FileSandbox(string? allowedDirectory)
    {
        if (allowedDirectory is null) return;
        string full = Path.GetFullPath(allowedDirectory);
        if (!Directory.Exists(full)) throw new TiltException($"--allow-files {allowedDirectory}: no such directory");
        _root = RealPath(full);
    }

    /// <summary>The directory requests may read from (links resolved), or null when they may read nothing.</summary>
    public string? Root => _root;

    /// <summary>Relative names resolve against the allowed directory; with none, against a root nothing is inside.</summary>
    public string BaseDirectory => _root ?? Path.GetPathRoot(Path.GetFullPath("."))!;

    /// <summary>The real path of <paramref name="fullPath"/> when it may be read; else a <see cref="TiltException"/> saying why not.</summary>
    public string Authorize(string fullPath)
    {
        if (_root is null)
            throw new TiltException($"'{fullPath}' is a file, and requests cannot make the server read files: name a reward or value head " +
                                    "from the server's --rewards file or a built-in (the operator may allow a directory with --allow-files)");
        string real;
        try
        {
            real = RealPath(Path.GetFullPath(fullPath));
        }
        catch (IOException e)
        {
            throw new TiltException($"'{fullPath}' cannot be resolved: {e.Message}", e);
        }
        string prefix = _root.EndsWith(Path.DirectorySeparatorChar) ? _root : _root + Path.DirectorySeparatorChar;
        if (!real.StartsWith(prefix, StringComparison.Ordinal))
            throw new TiltException($"'{fullPath}' is outside the directory the server allows files from");
        if (!File.Exists(real))
            throw new TiltException($"'{Path.GetRelativePath(_root, real)}' is not a file in the allowed directory");
        // A FIFO would hang the request (and the server's exit) until a writer came; a device would never end.
        if (InputFile.NonRegularKind(real) is { } kind)
            throw new TiltException($"'{Path.GetRelativePath(_root, real)}' is a {kind}, not a regular file");
        return real;
    }

    /// <summary>The path with every symbolic link among its components replaced by its final target.</summary>
    private static string RealPath(string fullPath, int depth = 0)
    {
        if (depth > 40) throw new TiltException($"'{fullPath}': too many levels of symbolic links");
        string root = Path.GetPathRoot(fullPath)!;
        string current = root;
        var parts = fullPath[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < parts.Length; i++)
        {
            string next = Path.Combine(current, parts[i]);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget is not null)
            {
                var target = info.ResolveLinkTarget(returnFinalTarget: true)
                             ?? throw new TiltException($"'{next}' is a link that cannot be resolved");
                // A link target may itself be a path with links in its directories: resolve it from the top again.
                string rest = string.Join(Path.DirectorySeparatorChar, parts[(i + 1)..]);
                return RealPath(Path.GetFullPath(rest.Length > 0 ? Path.Combine(target.FullName, rest) : target.FullName), depth + 1);
            }
            current = next;
        }
        return current;
    }
}
