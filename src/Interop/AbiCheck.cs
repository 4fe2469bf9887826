using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Interop;

/// <summary>
/// Start-up checks that libtilt (compiled from tilt.h) and this assembly agree: the layout of every struct that
/// crosses the boundary, and the defaults the header documents against the engine's own. A mismatch refuses to
/// bind (TILT_ERR_RUNTIME) instead of corrupting memory or silently changing behaviour.
/// </summary>
internal static unsafe class AbiCheck
{
    /// <summary>The structs in the order the shim describes them (native/src/tilt_host.c, abi_layout).</summary>
    public static readonly (string Name, Type Type)[] Structs =
    [
        ("tilt_model_options", typeof(TiltModelOptions)),
        ("tilt_model_info", typeof(TiltModelInfo)),
        ("tilt_request_options", typeof(TiltRequestOptions)),
        ("tilt_event", typeof(TiltEvent)),
        ("tilt_output_info", typeof(TiltOutputInfo)),
    ];

    /// <summary>This assembly's layout in the shim's format: per struct, its size, its field count, each field's offset.</summary>
    public static uint[] ManagedLayout()
    {
        var layout = new List<uint>();
        foreach (var (_, type) in Structs)
        {
            var fields = Fields(type);
            layout.Add((uint)Marshal.SizeOf(type));
            layout.Add((uint)fields.Length);
            foreach (var f in fields) layout.Add((uint)Marshal.OffsetOf(type, f.Name));
        }
        return [.. layout];
    }

    /// <summary>Null when <paramref name="native"/> equals <see cref="ManagedLayout"/>, else the first difference.</summary>
    public static string? CompareLayout(ReadOnlySpan<uint> native)
    {
        int at = 0;
        foreach (var (name, type) in Structs)
        {
            var fields = Fields(type);
            if (native.Length < at + 2) return $"tilt.h describes fewer structs than Tilt.Interop ({name} missing)";
            uint size = native[at], count = native[at + 1];
            if (size != Marshal.SizeOf(type)) return $"sizeof({name}) is {size} in tilt.h and {Marshal.SizeOf(type)} in Tilt.Interop";
            if (count != fields.Length) return $"{name} has {count} fields in tilt.h and {fields.Length} in Tilt.Interop";
            if (native.Length < at + 2 + fields.Length) return $"the layout of {name} is truncated";
            for (int i = 0; i < fields.Length; i++)
            {
                uint offset = native[at + 2 + i], managed = (uint)Marshal.OffsetOf(type, fields[i].Name);
                if (offset != managed)
                    return $"{name} field {i} ({fields[i].Name}) is at offset {offset} in tilt.h and {managed} in Tilt.Interop";
            }
            at += 2 + fields.Length;
        }
        return at == native.Length ? null : "tilt.h describes more structs than Tilt.Interop";
    }

    /// <summary>Null when the header's defaults are the engine's, else every field that differs.</summary>
    public static string? CompareDefaults(in TiltModelOptions model, in TiltRequestOptions request)
    {
        var blockwise = new BlockwiseOptions();
        var bestOfN = new BestOfNOptions();
        var tokenwise = new TokenwiseOptions();
        var sampling = new SamplingParameters();
        var problems = new List<string>();
        void Expect<T>(string field, T header, T engine)
        {
            if (!EqualityComparer<T>.Default.Equals(header, engine)) problems.Add($"{field} is {header} in tilt.h and {engine} in the engine");
        }

        Expect("tilt_model_options.backend", model.Backend, (int)KernelBackend.Auto);
        Expect("tilt_model_options.native_library", model.NativeLibrary == null, true);
        Expect("tilt_request_options.strategy", request.Strategy, (int)Strategy.Blockwise);
        Expect("tilt_request_options.samples", request.Samples, blockwise.Samples);
        Expect("tilt_request_options.max_tokens", request.MaxTokens, blockwise.MaxTokens);
        Expect("tilt_request_options.n", request.N, bestOfN.N);
        Expect("tilt_request_options.k", request.K, blockwise.K);
        Expect("tilt_request_options.block_size", request.BlockSize, blockwise.BlockSize);
        Expect("tilt_request_options.selection", request.Selection, (int)blockwise.Selection);
        Expect("tilt_request_options.tokenwise_top_k", request.TokenwiseTopK, tokenwise.Candidates);
        Expect("tilt_request_options.top_k", request.TopK, sampling.TopK);
        Expect("tilt_request_options.temperature", request.Temperature, sampling.Temperature);
        Expect("tilt_request_options.top_p", request.TopP, sampling.TopP);
        Expect("tilt_request_options.threads", request.Threads, 0);
        Expect("tilt_request_options.request_id", request.RequestId, blockwise.RequestId);
        Expect("tilt_request_options.beta (token-wise)", request.Beta, tokenwise.Beta);
        Expect("tilt_request_options.beta (blockwise)", request.Beta, blockwise.Beta);
        Expect("tilt_request_options.seed", request.Seed, blockwise.Seed);
        Expect("tilt_request_options.deadline_ms", request.DeadlineMs, 0L);
        var rejection = new RejectionOptions();
        Expect("tilt_request_options.alpha", request.Alpha, rejection.Alpha);
        Expect("tilt_request_options.every", request.Every, rejection.Every);
        Expect("tilt_request_options.reserved", request.Reserved, 0);
        Expect("tilt_request_options.lambda", request.Lambda, new SoftBestOfNOptions().Lambda);
        Expect("tilt_request_options.logprobs", request.Logprobs, 0);
        Expect("tilt_request_options.top_logprobs", request.TopLogprobs, 0);
        var beam = new BeamOptions();
        Expect("tilt_request_options.beams", request.Beams, beam.Beams);
        Expect("tilt_request_options.k (beam)", request.K, beam.K);
        Expect("tilt_request_options.block_size (beam)", request.BlockSize, beam.BlockSize);
        Expect("tilt_request_options.reserved3", request.Reserved3, 0);
        return problems.Count == 0 ? null : string.Join("; ", problems);
    }

    // Declaration order: the metadata tokens of a type's fields increase in the order they were written.
    private static FieldInfo[] Fields(Type type) =>
        [.. type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic).OrderBy(f => f.MetadataToken)];

    /// <summary>sizeof of a mirror struct, for the struct_size checks.</summary>
    public static uint SizeOf<T>() where T : unmanaged => (uint)Unsafe.SizeOf<T>();
}
