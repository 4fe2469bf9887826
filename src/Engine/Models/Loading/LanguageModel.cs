using Tilt.Engine.IO;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Models.Tabular;

namespace Tilt.Engine.Models.Loading;

/// <summary>Opens a model file of either kind.</summary>
public static class LanguageModel
{
    /// <summary>
    /// Loads a GGUF file, or a tabular model when the file is JSON (its first non-blank character is '{' or '[').
    /// </summary>
    public static ILanguageModel Load(string path, GgufLoadOptions? options = null)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ModelLoadException($"'{path}'", "the model path is empty; give a .gguf file or a tabular model JSON");
        string fullPath = Path.GetFullPath(path);
        if (Directory.Exists(fullPath)) throw new ModelLoadException(fullPath, "is a folder, not a model file (give a .gguf file or a tabular model JSON)");
        if (InputFile.Problem(fullPath, "model file") is { } problem) throw new ModelLoadException(fullPath, problem);
        return LooksLikeJson(fullPath) ? TabularModel.Load(fullPath) : GgufModel.Load(fullPath, options);
    }

    /// <summary>
    /// True when the first non-blank byte opens a JSON object or array: an array is JSON too, and the tabular
    /// loader then says what it expected, rather than the GGUF reader calling it "not a GGUF file".
    /// </summary>
    private static bool LooksLikeJson(string path)
    {
        Span<byte> head = stackalloc byte[64];
        int n;
        try
        {
            using var stream = File.OpenRead(path);
            n = stream.Read(head);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(path, $"cannot read the model file: {e.Message}", e);
        }
        foreach (byte b in head[..n])
        {
            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or 0xEF or 0xBB or 0xBF) continue; // blanks, UTF-8 BOM
            return b is (byte)'{' or (byte)'[';
        }
        return false;
    }
}
