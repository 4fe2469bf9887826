using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Tilt.Interop;

/// <summary>tilt_request_*: creating a request, running and cancelling it, reading its outputs.</summary>
public static unsafe partial class Exports
{
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
    public static int RequestOutputText(nint request, int index, byte* buffer, nuint bufferSize, nuint* outSize) =>
        CopyOutput(request, index, static o => o.Utf8Text, buffer, bufferSize, outSize, "buf_size", "out_size");

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestOutputTokens(nint request, int index, int* buffer, nuint bufferCount, nuint* outCount) =>
        CopyOutput(request, index, static o => o.Tokens, buffer, bufferCount, outCount, "buf_count", "out_count");

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    public static int RequestOutputLogprobs(nint request, int index, double* buffer, nuint bufferCount, nuint* outCount) =>
        CopyOutput(request, index, static o => o.LogProbs
            ?? throw StatusException.InvalidArgument("the request did not ask for log-probabilities (set logprobs or top_logprobs in tilt_request_options)"),
            buffer, bufferCount, outCount, "buf_count", "out_count");

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

    /// <summary>One array of an output through the buffer convention (<see cref="CopyOut"/>); <paramref name="select"/> picks it or refuses.</summary>
    private static int CopyOutput<T>(nint request, int index, Func<Output, T[]> select, T* buffer, nuint capacity, nuint* outSize, string capacityName,
        string sizeName) where T : unmanaged
    {
        try
        {
            var output = HandleTable.Get<RequestHandle>(request, "request").GetOutput(index);
            return CopyOut<T>(select(output), buffer, capacity, outSize, "buf", capacityName, sizeName);
        }
        catch (Exception e)
        {
            return ErrorSink.FromException(e);
        }
    }
}
