using Tilt.Engine.Requests;
using Tilt.Engine.Text;

namespace Tilt.Engine.Decoding;

/// <summary>
/// One hypothesis of beam search: the accepted tokens and text after the prompt, log p, its blocks' log p (for KL), the
/// sequence whose KV holds it, and the next-token logits and hidden state after its last token. Finished beams keep their
/// reward and no sequence of their own.
/// </summary>
internal sealed class Beam(int sequence, ITextDecoder decoder, StopText text, float[] logits, float[] hidden)
{
    public int Sequence { get; } = sequence;
    public List<int> Tokens { get; } = [];
    public ITextDecoder Decoder { get; } = decoder;
    public StopText Text { get; } = text;
    public double LogProb { get; private set; }
    public List<double> BlockLogProbs { get; } = [];
    public List<TokenLogProb> TokenLogProbs { get; } = [];
    public float[] Logits { get; } = logits;
    public float[] Hidden { get; } = hidden;

    /// <summary>Null while the beam grows; how it ended once it has.</summary>
    public AlignFinish? Finish { get; set; }

    /// <summary>The reward of its whole text once finished (NaN before).</summary>
    public double Reward { get; set; } = double.NaN;

    /// <summary>The empty beam on the prompt.</summary>
    public static Beam Root(StepContext context, StopMatcher? stops, int sequence, PromptState prompt) =>
        new(sequence, context.Model.CreateTextDecoder(), new StopText(stops), [.. prompt.Logits], [.. prompt.Hidden]);

    /// <summary>
    /// This beam followed by candidate block <paramref name="i"/> of <paramref name="rollout"/> (which continued it): a new beam
    /// on the block's sequence, its text rebuilt token by token as blockwise CD accepts a block (a stop token of the request
    /// ends it; the decoder is flushed when the output ends).
    /// </summary>
    public Beam Extend(StepContext context, ContinuationBatch rollout, int i, double score, StopMatcher? stops, int maxTokens, bool logprobs)
    {
        int vocab = context.Vocab, d = context.Hidden;
        var next = new Beam(rollout.SequenceOf(i), context.Model.CreateTextDecoder(), new StopText(stops),
            rollout.FinalLogits.AsSpan(i * vocab, vocab).ToArray(), rollout.FinalHidden.AsSpan(i * d, d).ToArray());
        var block = rollout.Tokens[i];
        next.Tokens.AddRange(Tokens);
        next.Tokens.AddRange(block);
        next.LogProb = LogProb + rollout.LogProb[i];
        next.BlockLogProbs.AddRange(BlockLogProbs);
        next.BlockLogProbs.Add(rollout.LogProb[i]);
        if (logprobs)
        {
            next.TokenLogProbs.AddRange(TokenLogProbs);
            next.TokenLogProbs.AddRange(rollout.TokenLogProbs[i]);
        }
        for (int t = 0; t < next.Tokens.Count; t++)
        {
            int before = next.Text.Length;
            next.Text.Append(next.Decoder.Push(next.Tokens[t]));
            if (t == next.Tokens.Count - 1 && rollout.StoppedByRequest[i] && stops!.IsStopToken(next.Tokens[t])) next.Text.StopAtToken(before);
        }
        next.Finish = rollout.StoppedByRequest[i] ? AlignFinish.Stop
            : rollout.Stopped[i] ? AlignFinish.Eos
            : next.Tokens.Count >= maxTokens ? AlignFinish.Length
            : null;
        if (next.Finish is not null && !next.Text.Stopped) next.Text.Append(next.Decoder.Flush());
        if (next.Finish is AlignFinish.Stop or AlignFinish.Eos) next.Reward = score; // the reward of its finished text
        return next;
    }

    /// <summary>
    /// The text of this beam if candidate block <paramref name="i"/> (which continued it) were accepted: cut at a stop string
    /// it completes (which may start in the beam's text), without a stop token's text unless the request keeps stops.
    /// </summary>
    public string CandidateText(ContinuationBatch rollout, int i, StopMatcher? stops)
    {
        var block = rollout.TokenSpan(i);
        string prefix = Text.ToString();
        string text = prefix + Decoder.Preview(block);
        if (!rollout.StoppedByRequest[i]) return text;
        int end = stops!.HasStrings ? stops.Find(text, prefix.Length) : -1;
        if (end >= 0) return text[..end];
        return stops.IncludeStop ? text : prefix + Decoder.Preview(block[..^1]);
    }

    /// <summary>The end of its text a stop string straddling the next block could start in.</summary>
    public string StopTail(StopMatcher? stops) =>
        stops is { HasStrings: true } ? Text.Span[Math.Max(0, Text.Length - (stops.MaxLength - 1))..].ToString() : "";
}

/// <summary>
/// What beam search has streamed: the tokens every kept beam agrees on, detokenized once, with text that could still start
/// a stop string held back.
/// </summary>
internal sealed class BeamStream(ITextDecoder decoder, StopMatcher? stops)
{
    private readonly StopText _text = new(stops);
    private int _tokens;   // agreed tokens streamed
    private int _chars;    // characters streamed

    /// <summary>Takes the tokens the kept beams now agree on; true when there are new ones.</summary>
    public bool Agree(IReadOnlyList<Beam> beams, out int[] tokens, out string text)
    {
        int common = beams.Min(b => b.Tokens.Count);
        for (int b = 1; b < beams.Count; b++)
        {
            int same = 0;
            while (same < common && beams[b].Tokens[same] == beams[0].Tokens[same]) same++;
            common = same;
        }
        // A finished beam's last token may be a stop token whose text the beam dropped: agreed text stops short of it.
        if (beams.Any(b => b.Finish is not null && b.Tokens.Count == common)) common = Math.Max(_tokens, common - 1);
        tokens = beams[0].Tokens.Skip(_tokens).Take(common - _tokens).ToArray();
        foreach (int t in tokens) _text.Append(decoder.Push(t));
        text = _text.TakeStreamable();
        _tokens = common;
        _chars += text.Length;
        return tokens.Length > 0 || text.Length > 0;
    }

    /// <summary>What is left of the winner after what was streamed.</summary>
    public (int[] Tokens, string Text) Rest(Beam winner, string text) =>
        ([.. winner.Tokens.Skip(_tokens)], _chars <= text.Length ? text[_chars..] : "");
}
