using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Models.Tabular;

namespace Tilt.Engine.Models;

/// <summary>Opens a model file of either kind.</summary>
public static class LanguageModel
{
    /// <summary>
    /// Loads a GGUF file, or a tabular model when the file is JSON (its first non-blank character is '{').
    /// </summary>
    public static ILanguageModel Load(string path, GgufLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath)) throw new ModelLoadException(fullPath, "model file not found");
        return LooksLikeJson(fullPath) ? TabularModel.Load(fullPath) : GgufModel.Load(fullPath, options);
    }

    private static bool LooksLikeJson(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> head = stackalloc byte[64];
        int n = stream.Read(head);
        foreach (byte b in head[..n])
        {
            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or 0xEF or 0xBB or 0xBF) continue; // blanks, UTF-8 BOM
            return b == (byte)'{';
        }
        return false;
    }
}
