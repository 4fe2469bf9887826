using System.Collections.Concurrent;

namespace Tilt.Interop;

/// <summary>Something a C caller holds a handle to.</summary>
internal abstract class HandleObject
{
    /// <summary>The C type name, for messages ("tilt_model").</summary>
    public abstract string KindName { get; }

    /// <summary>Called once when the handle leaves the table (free, or shutdown).</summary>
    public virtual void OnFreed()
    {
    }
}

/// <summary>
/// Handles are ids, never addresses: a C caller cannot make the engine dereference a freed or forged handle, it can
/// only miss the table (TILT_ERR_INVALID_HANDLE). Ids are never reused within a process, so a stale handle stays
/// invalid even after new objects are created. Every id carries a high tag that makes it a non-canonical address
/// on x86-64 and AArch64: a host that dereferences one by mistake faults at once instead of reading garbage.
/// </summary>
internal static class HandleTable
{
    private const long Tag = 0x7117L << 48;
    private static readonly ConcurrentDictionary<nint, HandleObject> Live = new();
    private static long _next;

    public static int Count => Live.Count;

    public static nint Add(HandleObject value)
    {
        nint id = (nint)(Tag | (Interlocked.Increment(ref _next) << 4));
        Live[id] = value;
        return id;
    }

    /// <summary>The live object behind <paramref name="id"/>, which must be a <typeparamref name="T"/>.</summary>
    /// <param name="argument">The C parameter name, for the message.</param>
    public static T Get<T>(nint id, string argument) where T : HandleObject
    {
        if (id == 0) throw new StatusException(TiltStatus.InvalidHandle, $"{argument} is NULL");
        if (!Live.TryGetValue(id, out var value))
            throw new StatusException(TiltStatus.InvalidHandle,
                $"{argument} (0x{id:x}) is not a live handle: it was freed, never issued, or issued before tilt_runtime_shutdown");
        return value as T ?? throw new StatusException(TiltStatus.InvalidHandle,
            $"{argument} is a {value.KindName} handle, not a {HandleKinds.NameOf<T>()}");
    }

    /// <summary>Takes <paramref name="id"/> out of the table (exactly one caller wins a race) and returns its object.</summary>
    public static T Remove<T>(nint id, string argument) where T : HandleObject
    {
        var value = Get<T>(id, argument);
        if (!Live.TryRemove(new KeyValuePair<nint, HandleObject>(id, value)))
            throw new StatusException(TiltStatus.InvalidHandle, $"{argument} (0x{id:x}) was freed concurrently by another thread");
        return value;
    }

    /// <summary>Every live object, removed from the table.</summary>
    public static List<HandleObject> RemoveAll()
    {
        var removed = new List<HandleObject>();
        foreach (var id in Live.Keys)
            if (Live.TryRemove(id, out var value)) removed.Add(value);
        return removed;
    }
}

internal static class HandleKinds
{
    public static string NameOf<T>() where T : HandleObject =>
        typeof(T) == typeof(ModelHandle) ? "tilt_model"
        : typeof(T) == typeof(RewardHandle) ? "tilt_reward"
        : typeof(T) == typeof(ValueHandle) ? "tilt_value"
        : typeof(T) == typeof(RequestHandle) ? "tilt_request"
        : typeof(T).Name;
}
