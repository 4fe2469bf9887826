using System.Diagnostics;
using Tilt.Engine.Requests;
using Tilt.Engine.Text;

namespace Tilt.Engine.Decoding;

/// <summary>
/// The output a token-wise or blockwise run is writing, one token or block at a time: accepted tokens, their text (with
/// the request's stop strings matched as it grows), log p, per-token log-probabilities and what it cost. One per run,
/// reset by <see cref="Begin"/> for each output, so the strategies keep only what is their own (candidates, values, KL).
/// </summary>
internal sealed class OutputInProgress(StopMatcher? stops)
{
    public List<int> Tokens { get; } = [];
    public List<TokenLogProb> TokenLogProbs { get; } = [];
    public StopText Text { get; } = new(stops);
    public ITextDecoder Decoder { get; private set; } = null!;

    /// <summary>log p(accepted tokens | prompt) under the base model.</summary>
    public double LogProb { get; set; }

    /// <summary>Tokens decoded for this output (candidates included): the compute it took.</summary>
    public long Evaluated { get; set; }

    public int DecodeCalls { get; set; }
    public TimeSpan ModelTime { get; set; }
    public int CachedPrompt { get; private set; }

    /// <summary>When the output started (on the request's clock), and its prompt's prefill time.</summary>
    public TimeSpan Start { get; private set; }

    public TimeSpan Prefill { get; private set; }

    /// <summary>When text was first accepted (time to first token or block).</summary>
    public TimeSpan? FirstAccepted { get; set; }

    /// <summary>Starts an output whose prompt was loaded between <paramref name="start"/> and now.</summary>
    public void Begin(StepContext context, Stopwatch clock, TimeSpan start, PromptState prompt)
    {
        Start = start;
        Prefill = clock.Elapsed - start;
        CachedPrompt = prompt.CachedTokens;
        Tokens.Clear();
        TokenLogProbs.Clear();
        Text.Clear();
        Decoder = context.Model.CreateTextDecoder();
        LogProb = 0;
        Evaluated = 0;
        DecodeCalls = 0;
        ModelTime = TimeSpan.Zero;
        FirstAccepted = null;
    }

    /// <summary>Marks the first accepted text (once).</summary>
    public void Accepted(Stopwatch clock) => FirstAccepted ??= clock.Elapsed - Start;

    public AlignTimings Timings(Stopwatch clock) =>
        new(Prefill, FirstAccepted ?? clock.Elapsed - Start, clock.Elapsed - Start, DecodeCalls) { ModelTime = ModelTime };
}
