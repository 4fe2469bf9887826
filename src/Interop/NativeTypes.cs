using System.Runtime.InteropServices;
using Tilt.Engine.Requests;

namespace Tilt.Interop;

// Mirrors of the structs in native/include/tilt.h. Field order and types must match the header exactly: the shim
// passes the header's sizeof/offsetof of every field at start-up and AbiCheck refuses to bind on any difference.

/// <summary>Status codes of tilt.h (TILT_OK and the negative TILT_ERR_*).</summary>
public static class TiltStatus
{
    public const int Ok = 0;
    public const int InvalidArgument = -1;
    public const int InvalidHandle = -2;
    public const int BufferTooSmall = -3;
    public const int NotInitialized = -4;
    public const int Runtime = -5;
    public const int ModelLoad = -6;
    public const int Engine = -7;
    public const int Callback = -8;
    public const int Cancelled = -9;
    public const int BadState = -10;
    public const int Unsupported = -11;
    public const int Internal = -12;
    public const int Busy = -13;
}

/// <summary>tilt_model_options.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct TiltModelOptions
{
    public uint StructSize;
    public int Backend;
    public byte* NativeLibrary;
}

/// <summary>tilt_model_info.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct TiltModelInfo
{
    public uint StructSize;
    public int VocabSize;
    public int HiddenSize;
    public int ContextSize;
    public int IsTabular;
    public int Reserved;
}

/// <summary>tilt_request_options.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct TiltRequestOptions
{
    public uint StructSize;
    public int Strategy;
    public int Samples;
    public int MaxTokens;
    public int N;
    public int K;
    public int BlockSize;
    public int Selection;
    public int TokenwiseTopK;
    public int TopK;
    public float Temperature;
    public float TopP;
    public int Threads;
    public uint RequestId;
    public double Beta;
    public ulong Seed;
    public long DeadlineMs;
    public double Alpha;
    public int Every;
    public int Reserved;

    // API 1.2: stop sequences.
    public byte** Stop;
    public int* StopTokenIds;
    public int NStop;
    public int NStopTokenIds;
    public int IncludeStop;
    public int Reserved2;

    // API 1.3: soft best-of-n, scoring a given text, per-token log-probabilities.
    public double Lambda;
    public byte* Continuation;
    public int Logprobs;
    public int TopLogprobs;

    // API 1.4: beam search.
    public int Beams;
    public int Reserved3;
}

/// <summary>tilt_event.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct TiltEvent
{
    public uint StructSize;
    public int Kind;
    public int Sample;
    public int Step;
    public int NTokens;
    public int NScores;
    public int Chosen;
    public int LiveSequences;
    public byte* Text;
    public int* Tokens;
    public double* Scores;
    public nuint TextLen;
    public double RunningKl;
    public double Reward;
    public double Kl;
    public int Finish;
    public int Reserved;
}

/// <summary>tilt_output_info.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct TiltOutputInfo
{
    public uint StructSize;
    public int Index;
    public int Finish;
    public int NTokens;
    public int KlMethod;
    public int KlBoundMethod;
    public int DecodeCalls;
    public int HasReward;
    public double Reward;
    public double LogProb;
    public double Kl;
    public double KlBound;
    public double WinRate;
    public long TokensEvaluated;
    public double PrefillMs;
    public double FirstTextMs;
    public double TotalMs;
}

/// <summary>
/// What the shim hands to <see cref="Exports.Initialize"/>: its API version, where to report errors, the header's
/// layout of every struct and its default options (checked against the engine's).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct TiltHostAbi
{
    public uint StructSize;
    public uint ApiVersion;

    /// <summary>void set_error(const char* utf8): stores the calling thread's last error in the shim.</summary>
    public delegate* unmanaged[Cdecl]<byte*, void> SetError;

    /// <summary>[n_layout] per struct: sizeof, field count, then each field's offset (see AbiCheck).</summary>
    public uint* Layout;
    public uint LayoutLength;
    public uint Reserved;
    public TiltModelOptions* ModelDefaults;
    public TiltRequestOptions* RequestDefaults;
}

internal enum Strategy
{
    Sample = 0,
    BestOfN = 1,
    Tokenwise = 2,
    Blockwise = 3,
    Rejection = 4,
    SoftBestOfN = 5,
    Score = 6,
    Beam = 7,
}

internal enum EventKind
{
    Text = 1,
    CandidatesScored = 2,
    Step = 3,
    OutputDone = 4,
}

internal enum NativeKlMethod
{
    None = 0,
    BonBound = 1,
    BonEstimate = 2,
    StepDriftSum = 3,
    BlockBound = 4,
    BlockEstimate = 5,
    SoftBonEstimate = 6,
}
