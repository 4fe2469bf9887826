using System.Text;
using Tilt.Engine;

namespace Tilt.Interop;

/// <summary>A failure that already knows its tilt.h status.</summary>
internal sealed class StatusException : Exception
{
    public StatusException(int status, string message) : base(message) => Status = status;

    public int Status { get; }

    public static StatusException InvalidArgument(string message) => new(TiltStatus.InvalidArgument, message);

    public static StatusException BadState(string message) => new(TiltStatus.BadState, message);
}

/// <summary>A host callback reported failure (non-zero return) or gave a non-finite reward.</summary>
internal sealed class HostCallbackException(string message) : Exception(message);

/// <summary>
/// Turns exceptions into status codes and hands the message to the shim, which keeps it as the calling thread's
/// last error. Nothing here may throw: it runs in the catch blocks of the exports.
/// </summary>
internal static unsafe class ErrorSink
{
    private static delegate* unmanaged[Cdecl]<byte*, void> _setError;

    public static void Attach(delegate* unmanaged[Cdecl]<byte*, void> setError) => _setError = setError;

    /// <summary>Stores <paramref name="message"/> as the thread's last error and returns <paramref name="status"/>.</summary>
    public static int Fail(int status, string message)
    {
        var sink = _setError;
        if (sink == null) return status;
        // The shim truncates long messages itself; cap the copy so a huge message cannot exhaust the stack.
        if (message.Length > 4000) message = message[..4000];
        int max = Encoding.UTF8.GetMaxByteCount(message.Length) + 1;
        Span<byte> bytes = max <= 1024 ? stackalloc byte[max] : new byte[max];
        int n = Encoding.UTF8.GetBytes(message, bytes);
        bytes[n] = 0;
        fixed (byte* p = bytes) sink(p);
        return status;
    }

    /// <summary>
    /// Maps an exception to its status and records its message. <paramref name="tiltFallback"/> is the status of a
    /// plain <see cref="TiltException"/> (input the user can fix), which depends on the call: loading a file or
    /// running a request.
    /// </summary>
    public static int FromException(Exception e, int tiltFallback = TiltStatus.Engine)
    {
        try
        {
            int status = Classify(e, tiltFallback);
            string message = status == TiltStatus.Internal ? $"internal error: {e.GetType().FullName}: {e.Message}" : e.Message;
            return Fail(status, message);
        }
        catch
        {
            return TiltStatus.Internal;
        }
    }

    private static int Classify(Exception e, int tiltFallback)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
            if (inner is HostCallbackException) return TiltStatus.Callback;
        return e switch
        {
            StatusException s => s.Status,
            OperationCanceledException => TiltStatus.Cancelled,
            ArgumentException => TiltStatus.InvalidArgument,
            ModelLoadException => TiltStatus.ModelLoad,
            RequestException => TiltStatus.Engine,
            Tilt.Engine.Decoding.EngineBusyException or Tilt.Engine.Decoding.EngineStoppingException => TiltStatus.Busy,
            NotSupportedException => TiltStatus.Unsupported,
            TiltException => tiltFallback,
            _ => TiltStatus.Internal,
        };
    }
}
