using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Tilt.Interop;

/// <summary>
/// The [UnmanagedCallersOnly] entry points behind tilt.h, bound by name by the shim (native/src/tilt_host.c). Each
/// one validates its arguments, does its work through the engine and returns a status; every exception is caught
/// here and becomes a status plus the thread's last error. The shim has already cleared the last error and checked
/// that the runtime is initialized; NULL options were replaced by the header's defaults. This file holds the runtime's
/// calls and the argument conventions; Exports.Models.cs the model, reward and value handles; Exports.Requests.cs requests.
/// </summary>
public static unsafe partial class Exports
{
    /// <summary>TILT_API_VERSION this assembly implements: major 1, minor 4.</summary>
    public const uint ApiVersion = (1u << 16) | 4u;

    /// <summary>Checks the shim's ABI and defaults and attaches its error sink. Called once per tilt_runtime_init.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int Initialize(TiltHostAbi* abi)
    {
        try
        {
            if (abi == null || abi->StructSize != (uint)sizeof(TiltHostAbi))
                return TiltStatus.Runtime;
            ErrorSink.Attach(abi->SetError);
            // A native host gives the runtime no application folder; the engine looks for its data (built-in
            // lexicons) and the default model from there, as it does beside the tilt command line.
            if (string.IsNullOrEmpty(AppContext.BaseDirectory))
                AppContext.SetData("APP_CONTEXT_BASE_DIRECTORY", Path.GetDirectoryName(typeof(Exports).Assembly.Location) + Path.DirectorySeparatorChar);
            if (abi->ApiVersion >> 16 != ApiVersion >> 16)
                return ErrorSink.Fail(TiltStatus.Runtime,
                    $"libtilt speaks API {abi->ApiVersion >> 16}.{abi->ApiVersion & 0xFFFF} and Tilt.Interop.dll {ApiVersion >> 16}.{ApiVersion & 0xFFFF}: rebuild them together");
            if (AbiCheck.CompareLayout(new ReadOnlySpan<uint>(abi->Layout, (int)abi->LayoutLength)) is { } layout)
                return ErrorSink.Fail(TiltStatus.Runtime, $"ABI mismatch between tilt.h and Tilt.Interop.dll: {layout}");
            if (AbiCheck.CompareDefaults(*abi->ModelDefaults, *abi->RequestDefaults) is { } defaults)
                return ErrorSink.Fail(TiltStatus.Runtime, $"the defaults of tilt.h drifted from the engine's: {defaults}");
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e, TiltStatus.Runtime);
        }
    }

    /// <summary>Frees every handle, unless a request is running.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int Shutdown()
    {
        try
        {
            if (RequestHandle.Running > 0)
                return ErrorSink.Fail(TiltStatus.BadState,
                    $"{RequestHandle.Running} requests are running; cancel them and let their runs return before tilt_runtime_shutdown");
            // Requests first: they hold references to their models.
            var all = HandleTable.RemoveAll();
            foreach (var h in all.OfType<RequestHandle>()) h.OnFreed();
            foreach (var h in all.Where(h => h is not RequestHandle)) h.OnFreed();
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e, TiltStatus.Internal);
        }
    }

    /// <summary>Does nothing: the cost of a call across the boundary.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int Ping() => TiltStatus.Ok;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int LiveHandles(long* outCount)
    {
        if (outCount == null) return ErrorSink.Fail(TiltStatus.InvalidArgument, "out_count is NULL");
        *outCount = HandleTable.Count;
        return TiltStatus.Ok;
    }


    private static int Free<T>(nint handle, string argument) where T : HandleObject
    {
        try
        {
            if (handle == 0) return TiltStatus.Ok;
            HandleTable.Remove<T>(handle, argument).OnFreed();
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    /// <summary>
    /// tilt_request_options of this API version, or of API 1.1, 1.2 or 1.3 (the struct without the members added since,
    /// which then take their defaults), so a caller compiled against an older header keeps working.
    /// </summary>
    internal static TiltRequestOptions ReadRequestOptions(TiltRequestOptions* options)
    {
        if (options == null) throw StatusException.InvalidArgument("options is NULL");
        uint size = options->StructSize;
        uint v11 = (uint)Marshal.OffsetOf<TiltRequestOptions>(nameof(TiltRequestOptions.Stop));
        uint v12 = (uint)Marshal.OffsetOf<TiltRequestOptions>(nameof(TiltRequestOptions.Lambda));
        uint v13 = (uint)Marshal.OffsetOf<TiltRequestOptions>(nameof(TiltRequestOptions.Beams));
        if (size == (uint)sizeof(TiltRequestOptions)) return *options;
        if (size != v11 && size != v12 && size != v13)
            throw StatusException.InvalidArgument($"tilt_request_options.struct_size is {size}, expected sizeof(tilt_request_options) = {sizeof(TiltRequestOptions)} " +
                $"(or {v13} from API 1.3, {v12} from API 1.2, {v11} from API 1.1; initialize it with tilt_request_default_options() or sizeof)");
        // The fields an older caller does not have take their defaults.
        var read = default(TiltRequestOptions);
        read.Lambda = new Tilt.Engine.Requests.SoftBestOfNOptions().Lambda;
        read.Beams = new Tilt.Engine.Requests.BeamOptions().Beams;
        Buffer.MemoryCopy(options, &read, sizeof(TiltRequestOptions), size);
        read.StructSize = (uint)sizeof(TiltRequestOptions);
        return read;
    }

    /// <summary>A caller's struct must be there and carry the header's sizeof in its first field.</summary>
    private static void CheckSize<T>(T* value, string type, string? argument = null) where T : unmanaged
    {
        if (value == null) throw StatusException.InvalidArgument($"{argument ?? "options"} is NULL");
        uint size = *(uint*)value;
        if (size != (uint)sizeof(T))
            throw StatusException.InvalidArgument($"{type}.struct_size is {size}, expected sizeof({type}) = {sizeof(T)} (initialize it with the *_default_options() function or sizeof)");
    }

    /// <summary>The buffer convention of tilt.h: always report the size, copy only when it fits.</summary>
    private static int CopyOut<T>(ReadOnlySpan<T> source, T* buffer, nuint capacity, nuint* outSize, string bufferName, string capacityName,
        string sizeName) where T : unmanaged
    {
        if (outSize == null) throw StatusException.InvalidArgument($"{sizeName} is NULL");
        if (buffer == null && capacity > 0) throw StatusException.InvalidArgument($"{bufferName} is NULL but {capacityName} is {capacity}");
        *outSize = (nuint)source.Length;
        if (capacity < (nuint)source.Length)
            return ErrorSink.Fail(TiltStatus.BufferTooSmall, $"{capacityName} is {capacity}; {source.Length} are needed");
        source.CopyTo(new Span<T>(buffer, source.Length));
        return TiltStatus.Ok;
    }
}
