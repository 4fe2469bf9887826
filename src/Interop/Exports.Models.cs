using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Engine.Models.Loading;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Interop;

/// <summary>tilt_model_*, tilt_reward_* and tilt_value_*: loading models, rewards and value heads, and freeing them.</summary>
public static unsafe partial class Exports
{
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
    public static int RewardLoadHead(nint model, byte* path, nint* outReward) =>
        LoadHead(model, path, outReward, "out_reward", static (file, info) => new RewardHandle(HeadReward.Load(file, info), info.Fingerprint));

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RewardFree(nint reward) => Free<RewardHandle>(reward, "reward");

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int ValueLoadHead(nint model, byte* path, nint* outValue) =>
        LoadHead(model, path, outValue, "out_value", static (file, info) => new ValueHandle(HeadValue.Load(file, info), info.Fingerprint));

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int ValueFree(nint value) => Free<ValueHandle>(value, "value");

    /// <summary>A trained head file read against the model's info (its fingerprint must match), as a new handle.</summary>
    private static int LoadHead(nint model, byte* path, nint* outHandle, string outName, Func<string, ModelInfo, HandleObject> load)
    {
        try
        {
            var owner = HandleTable.Get<ModelHandle>(model, "model");
            string file = Utf8.Read(path, "path");
            if (outHandle == null) throw StatusException.InvalidArgument($"{outName} is NULL");
            *outHandle = HandleTable.Add(load(file, owner.Model.Info));
            return TiltStatus.Ok;
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e, TiltStatus.ModelLoad);
        }
    }
}
