using LLama.Native;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// Process-wide llama.cpp library setup. LLamaSharp binds its native library once, on the first call
/// that needs it, so a user's own build (e.g. CUDA) must be named before any model is loaded; so must OpenMP's
/// wait policy (<see cref="OpenMpWaitPolicy"/>), which libgomp reads when the library loads it.
/// Also routes llama.cpp's log: errors and warnings are kept (the last few explain load failures,
/// which llama.cpp reports only through its log), the chatter is dropped.
/// </summary>
public static class LlamaNative
{
    private static readonly Lock Gate = new();
    private static bool _configured;
    private static string? _libraryPath;

    [ThreadStatic] private static List<string>? _recentErrors;

    /// <summary>Environment variable naming the native llama library when no path is given (e.g. by --native-lib).</summary>
    public const string LibraryVariable = "TILT_NATIVE_LIB";

    /// <summary>OpenMP's wait settings as llama.cpp's libgomp sees them, e.g. "OMP_WAIT_POLICY unset, GOMP_SPINCOUNT=1000".</summary>
    public static string OpenMpSettings => OpenMpWaitPolicy.Describe();

    /// <summary>Optional sink for llama.cpp warnings and errors (e.g. the CLI's --verbose).</summary>
    public static Action<string>? Log { get; set; }

    /// <summary>
    /// Chooses the native llama library. Call before loading any GGUF model; null takes $TILT_NATIVE_LIB, else
    /// keeps the bundled CPU backend (LLamaSharp.Backend.Cpu). Calling again with the same value is harmless.
    /// A library of your own is checked against the ABI LLamaSharp expects (<see cref="LlamaAbi"/>).
    /// </summary>
    /// <exception cref="TiltException">The library is missing or of another llama.cpp build, or another one was already bound.</exception>
    public static void Configure(string? libraryPath)
    {
        if (string.IsNullOrEmpty(libraryPath))
            libraryPath = Environment.GetEnvironmentVariable(LibraryVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
        lock (Gate)
        {
            if (libraryPath is not null) NativeLibraryProbe.Check(libraryPath);
            if (_configured)
            {
                if (!string.Equals(_libraryPath, libraryPath, StringComparison.Ordinal))
                    throw new TiltException(
                        $"the native llama library is already bound ({_libraryPath ?? "bundled CPU backend"}); " +
                        $"it cannot be switched to {libraryPath ?? "the bundled CPU backend"} within one process");
                return;
            }

            if (!NativeLibraryConfig.LLama.LibraryHasLoaded && !OpenMpWaitPolicy.Apply())
                Log?.Invoke($"warning: libgomp was loaded before the engine could set GOMP_SPINCOUNT={OpenMpWaitPolicy.DefaultSpinCount}; llama.cpp's OpenMP workers keep libgomp's default spin-waiting");
            if (libraryPath is not null)
            {
                if (NativeLibraryConfig.LLama.LibraryHasLoaded)
                    throw new TiltException($"{libraryPath}: the bundled llama library was already loaded; name the native library before loading any model");
                LlamaAbi.Check(libraryPath);
                NativeLibraryConfig.All.WithLibrary(libraryPath, null);
            }

            NativeLibraryConfig.All.WithLogCallback(OnNativeLog);
            _libraryPath = libraryPath;
            _configured = true;
        }
    }

    /// <summary>Ensures the defaults are configured when nobody named a library.</summary>
    internal static void EnsureConfigured()
    {
        lock (Gate)
        {
            if (!_configured) Configure(null);
        }
    }

    /// <summary>Starts collecting llama.cpp errors on this thread (for the message of a failed load).</summary>
    internal static void BeginCapture() => (_recentErrors ??= []).Clear();

    /// <summary>The errors llama.cpp logged on this thread since <see cref="BeginCapture"/>, joined.</summary>
    internal static string CapturedErrors() =>
        _recentErrors is { Count: > 0 } errors ? string.Join("; ", errors) : string.Empty;

    internal static void OnNativeLog(LLamaLogLevel level, string message)
    {
        if (level is not (LLamaLogLevel.Error or LLamaLogLevel.Warning)) return;
        string line = message.TrimEnd();
        if (line.Length == 0) return;
        if (level == LLamaLogLevel.Error && _recentErrors is { } errors && errors.Count < 8) errors.Add(line);
        Log?.Invoke($"llama.cpp {(level == LLamaLogLevel.Error ? "error" : "warning")}: {line}");
    }
}
