using System.Runtime.InteropServices;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// Checks a user-named native library before LLamaSharp binds it. LLamaSharp binds once per process and reports a
/// wrong file only later, as a TypeInitializationException from its static constructor, after which no model can
/// ever load in that process. Probing first (dlopen the file, look up the llama functions the engine calls) turns a
/// wrong file into a clear error while nothing is bound yet, so the caller can fix the path or fall back to the
/// bundled library.
/// </summary>
internal static class NativeLibraryProbe
{
    /// <summary>
    /// The llama.h functions the engine reaches through LLamaSharp: loading, contexts, batched decode with logits
    /// and embeddings, KV sequence copies, tokenization and the log hook. Present in llama.cpp b10221 (815a2a5),
    /// the commit LLamaSharp 0.30.0 is built from.
    /// </summary>
    internal static readonly string[] RequiredSymbols =
    [
        "llama_backend_init", "llama_log_set", "llama_model_load_from_file", "llama_model_free", "llama_model_get_vocab",
        "llama_init_from_model", "llama_free", "llama_n_ctx", "llama_batch_init", "llama_batch_free", "llama_decode",
        "llama_get_logits_ith", "llama_get_embeddings_ith", "llama_get_memory", "llama_memory_seq_cp", "llama_memory_seq_rm",
        "llama_tokenize", "llama_token_to_piece",
    ];

    /// <summary>Throws a <see cref="TiltException"/> naming the file when it is not a loadable llama library.</summary>
    public static void Check(string libraryPath)
    {
        string full = Path.GetFullPath(libraryPath);
        if (Directory.Exists(full)) throw new TiltException($"{full}: is a folder; --native-lib takes the llama library file (libllama.so, llama.dll)");
        if (!File.Exists(full)) throw new TiltException($"{full}: native llama library not found");
        IntPtr handle;
        try
        {
            handle = NativeLibrary.Load(full);
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            throw new TiltException($"{full}: cannot be loaded as a native library (not a shared library for this platform, or a dependency is missing): {e.Message}", e);
        }

        var missing = RequiredSymbols.Where(s => !NativeLibrary.TryGetExport(handle, s, out _)).ToArray();
        if (missing.Length > 0)
        {
            // Not a llama library: unload it again. A real one stays loaded, as LLamaSharp loads it next anyway.
            NativeLibrary.Free(handle);
            throw new TiltException(
                $"{full}: is not a llama.cpp library of the version the engine needs: it does not export {string.Join(", ", missing.Take(4))}" +
                (missing.Length > 4 ? $" and {missing.Length - 4} more" : ""));
        }
    }
}
