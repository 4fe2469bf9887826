using Tilt.Engine.Requests;


namespace Tilt.Interop;

/// <summary>One completed output of a request, kept in the shapes the C calls copy out.</summary>
internal sealed class Output
{
    private TiltOutputInfo _info;

    private Output(int index, string text, int[] tokens, TiltOutputInfo info)
    {
        Index = index;
        Utf8Text = Utf8.ToNullTerminated(text);
        Tokens = tokens;
        _info = info;
        _info.StructSize = (uint)System.Runtime.CompilerServices.Unsafe.SizeOf<TiltOutputInfo>();
        _info.Index = index;
        _info.NTokens = tokens.Length;
    }

    public int Index { get; }

    /// <summary>The text's UTF-8 bytes followed by a NUL.</summary>
    public byte[] Utf8Text { get; }

    public int[] Tokens { get; }

    public ref readonly TiltOutputInfo Info => ref _info;

    public static Output FromAligned(AlignedSample s) => new(s.Index, s.Text, [.. s.Tokens], new TiltOutputInfo
    {
        Finish = Finish(s.Finish),
        KlMethod = (int)Method(s.Kl.Method),
        KlBoundMethod = (int)(s.KlBound is { } b ? Method(b.Method) : NativeKlMethod.None),
        DecodeCalls = s.Timings.DecodeCalls,
        HasReward = 1,
        Reward = s.Reward,
        LogProb = s.LogProb,
        Kl = s.Kl.Value,
        KlBound = s.KlBound?.Value ?? double.NaN,
        WinRate = s.WinRateVsCandidates ?? double.NaN,
        TokensEvaluated = s.TokensEvaluated,
        PrefillMs = s.Timings.Prefill.TotalMilliseconds,
        FirstTextMs = s.Timings.FirstAccepted.TotalMilliseconds,
        TotalMs = s.Timings.Total.TotalMilliseconds,
    });

    /// <summary>A plain sample (KL 0: its policy is p itself at T = 1; the batch's prefill and decode calls).</summary>
    public static Output FromSample(AlignedSample s, bool hasReward) =>
        new(s.Index, s.Text, [.. s.Tokens], new TiltOutputInfo
        {
            Finish = Finish(s.Finish),
            KlMethod = (int)NativeKlMethod.None,
            KlBoundMethod = (int)NativeKlMethod.None,
            DecodeCalls = s.Timings.DecodeCalls,
            HasReward = hasReward ? 1 : 0,
            Reward = hasReward ? s.Reward : double.NaN,
            LogProb = s.LogProb,
            Kl = 0,
            KlBound = double.NaN,
            WinRate = double.NaN,
            TokensEvaluated = s.Tokens.Count,
            PrefillMs = s.Timings.Prefill.TotalMilliseconds,
            FirstTextMs = s.Timings.FirstAccepted.TotalMilliseconds,
            TotalMs = s.Timings.Total.TotalMilliseconds,
        });

    private static int Finish(AlignFinish finish) => finish switch
    {
        AlignFinish.Eos => 0,
        AlignFinish.Length => 1,
        AlignFinish.Deadline => 2,
        _ => 3,
    };

    private static NativeKlMethod Method(KlMethod method) => method switch
    {
        KlMethod.BestOfNBound => NativeKlMethod.BonBound,
        KlMethod.BestOfNEstimate => NativeKlMethod.BonEstimate,
        KlMethod.StepDriftSum => NativeKlMethod.StepDriftSum,
        KlMethod.BlockBound => NativeKlMethod.BlockBound,
        KlMethod.BlockEstimate => NativeKlMethod.BlockEstimate,
        _ => NativeKlMethod.None,
    };
}
