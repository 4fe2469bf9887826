using System.Runtime.InteropServices;
using System.Text;
using LLama.Native;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// Receives llama.cpp's log lines as raw bytes. LLamaSharp's own callback takes a <c>string</c>, so the runtime
/// measures each line with a vectorized scan for its NUL that reads whole 16-byte blocks, past the end of the
/// heap block llama.cpp formatted the line into (valgrind: "invalid read of size 16" inside
/// llama_log_internal_v). The scan never crosses a page, so it is harmless in practice, but it is a real
/// out-of-bounds read. This hook measures the line one byte at a time (never reading past its NUL) and copies it
/// into a managed buffer before anything else looks at it.
/// </summary>
internal static unsafe class NativeLogHook
{
    /// <summary>A log line longer than this is cut (llama.cpp's lines are a few hundred bytes).</summary>
    private const int MaxLineBytes = 1 << 16;

    private static readonly Lock Gate = new();
    private static bool _installed;

    /// <summary>
    /// Replaces LLamaSharp's log callback with this hook once the llama library is loaded (LLamaSharp's stays in
    /// place for the lines of the library's own start-up). Safe to call repeatedly; does nothing when the
    /// library's llama_log_set cannot be found.
    /// </summary>
    public static void Install(string? libraryPath)
    {
        lock (Gate)
        {
            if (_installed) return;
            NativeApi.llama_empty_call(); // loads the library (and sets LLamaSharp's callback) if not done yet
            if (!TryFindLibrary(libraryPath, out IntPtr library) || !NativeLibrary.TryGetExport(library, "llama_log_set", out IntPtr setLog))
                return;
            var llamaLogSet = (delegate* unmanaged[Cdecl]<delegate* unmanaged[Cdecl]<int, byte*, void*, void>, void*, void>)setLog;
            llamaLogSet(&OnLog, null);
            _installed = true;
        }
    }

    /// <summary>The loaded llama library: by its own path, or by its soname, which the loader matches to the loaded copy.</summary>
    private static bool TryFindLibrary(string? libraryPath, out IntPtr library)
    {
        if (libraryPath is not null) return NativeLibrary.TryLoad(Path.GetFullPath(libraryPath), out library);
        foreach (string name in new[] { "libllama.so", "llama.dll", "libllama.dylib" })
            if (NativeLibrary.TryLoad(name, out library)) return true;
        library = IntPtr.Zero;
        return false;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static void OnLog(int level, byte* text, void* userData)
    {
        if (text == null) return;
        try
        {
            int length = 0;
            while (length < MaxLineBytes && text[length] != 0) length++;
            var copy = new byte[length];
            new ReadOnlySpan<byte>(text, length).CopyTo(copy);
            LlamaNative.OnNativeLog((LLamaLogLevel)level, Encoding.UTF8.GetString(copy));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Nothing may unwind into llama.cpp; a log line that cannot be handled is dropped.
        }
    }
}
