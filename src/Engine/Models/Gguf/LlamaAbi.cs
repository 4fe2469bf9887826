using System.Runtime.InteropServices;
using LLama.Native;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// Checks that a user's llama library is the build LLamaSharp 0.30.0 was written against (llama.cpp 815a2a5) before
/// LLamaSharp binds it. LLamaSharp passes structs by value and calls functions by name: a library of another
/// commit may lack a function (an EntryPointNotFoundException deep inside a decode) or lay a struct out differently,
/// which nothing reports and which corrupts memory. Three checks, each with its own message: the functions the
/// engine needs are exported; ggml_commit() names the expected commit; and llama_context_default_params() returns
/// the expected defaults at the offsets LLamaSharp's LLamaContextParams assumes (a layout drift moves them).
/// </summary>
internal static class LlamaAbi
{
    /// <summary>The llama.cpp commit LLamaSharp 0.30.0 binds (as ggml_commit() prints it, at least 7 hex digits).</summary>
    internal const string ExpectedCommit = "815a2a5";

    // What the engine and LLamaSharp's calls on its path need (model load, context, batch decode, KV forks, outputs).
    private static readonly string[] RequiredFunctions =
    [
        "llama_backend_init", "llama_model_load_from_file", "llama_model_free", "llama_init_from_model", "llama_free",
        "llama_context_default_params", "llama_model_default_params", "llama_batch_init", "llama_batch_free",
        "llama_decode", "llama_get_logits_ith", "llama_get_embeddings_ith", "llama_get_memory", "llama_memory_seq_cp",
        "llama_memory_seq_rm", "llama_memory_seq_keep", "llama_memory_seq_pos_max", "llama_memory_clear",
        "llama_set_embeddings", "llama_model_get_vocab", "llama_vocab_n_tokens", "llama_model_n_embd", "llama_tokenize",
        "llama_token_to_piece", "llama_print_system_info", "llama_log_set", "ggml_commit",
    ];

    // A return buffer far larger than llama_context_params (~120 bytes): the callee writes its own struct size
    // through the hidden result pointer, so a larger struct of another commit cannot overrun the caller's memory.
    [StructLayout(LayoutKind.Sequential, Size = 1024)]
    private struct ReturnBuffer;

    /// <summary>Loads <paramref name="path"/> and throws when it is not the expected build.</summary>
    /// <exception cref="TiltException">The library cannot be loaded or does not match, with the reason.</exception>
    internal static void Check(string path)
    {
        if (!NativeLibrary.TryLoad(path, out nint handle))
            throw new TiltException($"{path}: not a loadable native library for this platform (or one of its dependencies, e.g. libggml or libgomp, is missing)");
        // The handle stays open: LLamaSharp binds this very library next, and unloading ggml mid-process is unsafe.
        var problem = Inspect(handle);
        if (problem is not null)
            throw new TiltException($"{path}: {problem}; build llama.cpp {ExpectedCommit} (dotnet pwsh ./build.ps1 llama -LlamaSource DIR)");
    }

    /// <summary>The first mismatch of a loaded library with the expected ABI, or null when it matches.</summary>
    internal static unsafe string? Inspect(nint handle)
    {
        var missing = RequiredFunctions.Where(f => !NativeLibrary.TryGetExport(handle, f, out _)).ToArray();
        if (missing.Length > 0)
            return $"not a llama.cpp {ExpectedCommit} library: it lacks {string.Join(", ", missing)}";

        var commitFn = (delegate* unmanaged<byte*>)NativeLibrary.GetExport(handle, "ggml_commit");
        string commit = Marshal.PtrToStringUTF8((nint)commitFn()) ?? "";
        if (!commit.StartsWith(ExpectedCommit, StringComparison.OrdinalIgnoreCase))
            return $"built from llama.cpp commit '{commit}', but LLamaSharp 0.30.0 binds {ExpectedCommit}; its structs may differ";

        var defaultsFn = (delegate* unmanaged<ReturnBuffer>)NativeLibrary.GetExport(handle, "llama_context_default_params");
        ReturnBuffer buffer = defaultsFn();
        byte* p = (byte*)&buffer;
        T At<T>(string field) where T : unmanaged => *(T*)(p + Marshal.OffsetOf<LLamaContextParams>(field));
        // Defaults of 815a2a5 (llama-context.cpp), spread over the struct so that a shift anywhere shows.
        (string Field, double Found, double Expected)[] checks =
        [
            ("n_ctx", At<uint>("n_ctx"), 512), ("n_batch", At<uint>("n_batch"), 2048), ("n_ubatch", At<uint>("n_ubatch"), 512),
            ("n_seq_max", At<uint>("n_seq_max"), 1), ("yarn_beta_fast", At<float>("yarn_beta_fast"), -1),
            ("type_k", At<int>("type_k"), (int)GGMLType.GGML_TYPE_F16), ("type_v", At<int>("type_v"), (int)GGMLType.GGML_TYPE_F16),
        ];
        var wrong = checks.Where(c => c.Found != c.Expected).Select(c => $"{c.Field} = {c.Found} (expected {c.Expected})").ToArray();
        if (wrong.Length > 0)
            return $"llama_context_default_params() does not match the llama_context_params layout LLamaSharp 0.30.0 expects: {string.Join(", ", wrong)}";
        return null;
    }
}
