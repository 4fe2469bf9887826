using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Tilt.Engine;
using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Engine.Models.Loading;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Interop;

/// <summary>
/// The [UnmanagedCallersOnly] entry points behind tilt.h, bound by name by the shim (native/src/tilt_host.c). Each
/// one validates its arguments, does its work through the engine and returns a status; every exception is caught
/// here and becomes a status plus the thread's last error. The shim has already cleared the last error and checked
/// that the runtime is initialized; NULL options were replaced by the header's defaults.
/// </summary>
public static unsafe class Exports
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

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int ModelLoad(byte* path, TiltModelOptions* options, nint* outModel)
    {
        try
        {
            if (outModel == null) throw StatusException.InvalidArgument("out_model is NULL");
            CheckSize(options, "tilt_model_options");
            var backend = options->Backend switch
            {
                0 => KernelBackend.Auto,
                1 => KernelBackend.Cpu,
                2 => KernelBackend.Cuda,
                _ => throw StatusException.InvalidArgument($"tilt_model_options.backend must be a tilt_backend (0..2), got {options->Backend}"),
            };
            string? library = Utf8.ReadOrNull(options->NativeLibrary, "tilt_model_options.native_library");
            string file = Utf8.ReadOrNull(path, "path") ?? DefaultModel.Resolve();

            var model = LanguageModel.Load(file, new GgufLoadOptions { NativeLibraryPath = library });
            IStepKernels kernels;
            try
            {
                kernels = StepKernels.Create(backend);
            }
            catch
            {
                model.Dispose();
                throw;
            }
            *outModel = HandleTable.Add(new ModelHandle(model, kernels));
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e, TiltStatus.ModelLoad);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int ModelGetInfo(nint model, TiltModelInfo* outInfo)
    {
        try
        {
            var info = HandleTable.Get<ModelHandle>(model, "model").Model.Info;
            CheckSize(outInfo, "tilt_model_info", "out_info");
            outInfo->VocabSize = info.VocabularySize;
            outInfo->HiddenSize = info.HiddenSize;
            outInfo->ContextSize = info.TrainedContextSize;
            outInfo->IsTabular = info.Kind == ModelKind.Tabular ? 1 : 0;
            outInfo->Reserved = 0;
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int ModelFree(nint model) => Free<ModelHandle>(model, "model");

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RewardCreateCallback(delegate* unmanaged[Cdecl]<void*, byte*, byte*, int, double*, int> function, void* userData,
        byte* name, nint* outReward)
    {
        try
        {
            if (function == null) throw StatusException.InvalidArgument("fn is NULL");
            if (outReward == null) throw StatusException.InvalidArgument("out_reward is NULL");
            string description = Utf8.ReadOrNull(name, "name") is { Length: > 0 } n && !string.IsNullOrWhiteSpace(n) ? n : "callback";
            var host = new HostReward(function, userData);
            *outReward = HandleTable.Add(new RewardHandle(new CallbackReward(host.Score, description), null));
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RewardCreateSpec(nint model, byte* spec, nint* outReward)
    {
        try
        {
            var owner = model == 0 ? null : HandleTable.Get<ModelHandle>(model, "model");
            string text = Utf8.Read(spec, "spec");
            if (outReward == null) throw StatusException.InvalidArgument("out_reward is NULL");
            bool readsModel = false;
            var reward = RewardSpec.Parse(text, new RewardSpecContext
            {
                HeadRewardFactory = owner is null
                    ? null
                    : path =>
                    {
                        readsModel = true;
                        return HeadReward.Load(path, owner.Model.Info);
                    },
            });
            *outReward = HandleTable.Add(new RewardHandle(reward, readsModel ? owner!.Model.Info.Fingerprint : null));
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e, TiltStatus.Engine);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RewardLoadHead(nint model, byte* path, nint* outReward)
    {
        try
        {
            var owner = HandleTable.Get<ModelHandle>(model, "model");
            string file = Utf8.Read(path, "path");
            if (outReward == null) throw StatusException.InvalidArgument("out_reward is NULL");
            var info = owner.Model.Info;
            *outReward = HandleTable.Add(new RewardHandle(HeadReward.Load(file, info), info.Fingerprint));
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e, TiltStatus.ModelLoad);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RewardFree(nint reward) => Free<RewardHandle>(reward, "reward");

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int ValueLoadHead(nint model, byte* path, nint* outValue)
    {
        try
        {
            var owner = HandleTable.Get<ModelHandle>(model, "model");
            string file = Utf8.Read(path, "path");
            if (outValue == null) throw StatusException.InvalidArgument("out_value is NULL");
            var info = owner.Model.Info;
            *outValue = HandleTable.Add(new ValueHandle(HeadValue.Load(file, info), info.Fingerprint));
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e, TiltStatus.ModelLoad);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int ValueFree(nint value) => Free<ValueHandle>(value, "value");

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestCreate(nint model, byte* prompt, TiltRequestOptions* options, nint reward, nint value, nint* outRequest)
    {
        try
        {
            var owner = HandleTable.Get<ModelHandle>(model, "model");
            var rewardHandle = reward == 0 ? null : HandleTable.Get<RewardHandle>(reward, "reward");
            var valueHandle = value == 0 ? null : HandleTable.Get<ValueHandle>(value, "value");
            string text = Utf8.Read(prompt, "prompt");
            var read = ReadRequestOptions(options);
            if (outRequest == null) throw StatusException.InvalidArgument("out_request is NULL");
            var request = RequestHandle.Create(owner, text, read, rewardHandle, valueHandle);
            owner.AddReference();
            *outRequest = HandleTable.Add(request);
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestRun(nint request, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int> onEvent, void* userData)
    {
        try
        {
            return HandleTable.Get<RequestHandle>(request, "request").Run(onEvent, userData);
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestCancel(nint request)
    {
        try
        {
            HandleTable.Get<RequestHandle>(request, "request").Cancel();
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestOutputCount(nint request, int* outCount)
    {
        try
        {
            var handle = HandleTable.Get<RequestHandle>(request, "request");
            if (outCount == null) throw StatusException.InvalidArgument("out_count is NULL");
            *outCount = handle.OutputCount;
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestOutputText(nint request, int index, byte* buffer, nuint bufferSize, nuint* outSize)
    {
        try
        {
            var output = HandleTable.Get<RequestHandle>(request, "request").GetOutput(index);
            return CopyOut<byte>(output.Utf8Text, buffer, bufferSize, outSize, "buf", "buf_size", "out_size");
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestOutputTokens(nint request, int index, int* buffer, nuint bufferCount, nuint* outCount)
    {
        try
        {
            var output = HandleTable.Get<RequestHandle>(request, "request").GetOutput(index);
            return CopyOut<int>(output.Tokens, buffer, bufferCount, outCount, "buf", "buf_count", "out_count");
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestOutputLogprobs(nint request, int index, double* buffer, nuint bufferCount, nuint* outCount)
    {
        try
        {
            var output = HandleTable.Get<RequestHandle>(request, "request").GetOutput(index);
            if (output.LogProbs is not { } values)
                throw StatusException.InvalidArgument("the request did not ask for log-probabilities (set logprobs or top_logprobs in tilt_request_options)");
            return CopyOut<double>(values, buffer, bufferCount, outCount, "buf", "buf_count", "out_count");
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestOutputTopLogprobs(nint request, int index, int* tokens, double* logprobs, nuint bufferCount, nuint* outCount)
    {
        try
        {
            var output = HandleTable.Get<RequestHandle>(request, "request").GetOutput(index);
            if (output.Top == 0)
                throw StatusException.InvalidArgument("the request asked for no alternatives (set top_logprobs in tilt_request_options)");
            int status = CopyOut<int>(output.TopTokens, tokens, bufferCount, outCount, "tokens", "buf_count", "out_count");
            return status != TiltStatus.Ok ? status : CopyOut<double>(output.TopLogProbs, logprobs, bufferCount, outCount, "logprobs", "buf_count", "out_count");
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestOutputInfo(nint request, int index, TiltOutputInfo* outInfo)
    {
        try
        {
            var output = HandleTable.Get<RequestHandle>(request, "request").GetOutput(index);
            CheckSize(outInfo, "tilt_output_info", "out_info");
            *outInfo = output.Info;
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestFree(nint request) => Free<RequestHandle>(request, "request");

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
