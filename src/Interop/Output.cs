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

    /// <summary>Per-token log p at T = 1 when the request asked for them (null otherwise).</summary>
    public double[]? LogProbs { get; private init; }

    /// <summary>Alternatives per token (0 when none were asked for) and their [tokens, Top] ids and log p, row-major.</summary>
    public int Top { get; private init; }

    public int[] TopTokens { get; private init; } = [];
    public double[] TopLogProbs { get; private init; } = [];

    /// <summary>Attaches the per-token log-probabilities an output carries (<paramref name="top"/> alternatives each).</summary>
    public Output WithLogProbs(IReadOnlyList<TokenLogProb>? tokens, int top)
    {
        if (tokens is null) return this;
        var ids = new int[tokens.Count * top];
        var values = new double[tokens.Count * top];
        for (int t = 0; t < tokens.Count; t++)
        {
            var alternatives = tokens[t].Top;
            for (int j = 0; j < top; j++)
            {
                // A row with fewer possible tokens than asked (a tabular model) pads with -inf and token -1.
                (ids[t * top + j], values[t * top + j]) = j < alternatives.Count ? (alternatives[j].Token, alternatives[j].LogProb) : (-1, double.NegativeInfinity);
            }
        }
        return new Output(Index, _info, Utf8Text, Tokens)
        {
            LogProbs = [.. tokens.Select(x => x.LogProb)],
            Top = top,
            TopTokens = ids,
            TopLogProbs = values,
        };
    }

    private Output(int index, TiltOutputInfo info, byte[] utf8Text, int[] tokens)
    {
        Index = index;
        Utf8Text = utf8Text;
        Tokens = tokens;
        _info = info;
    }

    /// <summary>A scored text: its tokens, their summed log p, nothing generated (finish: length, no reward, no KL).</summary>
    public static Output FromScore(ScoreResult s) => new(0, s.Text, [.. s.Tokens], new TiltOutputInfo
    {
        Finish = 1,
        KlMethod = (int)NativeKlMethod.None,
        KlBoundMethod = (int)NativeKlMethod.None,
        HasReward = 0,
        Reward = double.NaN,
        LogProb = s.LogProb,
        Kl = 0,
        KlBound = double.NaN,
        WinRate = double.NaN,
        TokensEvaluated = s.TokensEvaluated,
    });

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
        KlMethod.SoftBestOfNEstimate => NativeKlMethod.SoftBonEstimate,
        _ => NativeKlMethod.None,
    };
}
