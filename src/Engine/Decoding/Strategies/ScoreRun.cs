using System.Diagnostics;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Teacher forcing as a step function: a given text's tokens are decoded one per iteration on the run's one sequence, each
/// row joining the engine's shared decode beside every other request's rows, and log p of the next given token (with the
/// requested alternatives) comes from the step's one top-N pass. The first given token reads the prompt's logits (from
/// the prompt cache or its prefill), so a continuation of L tokens costs L - 1 decoded rows. Nothing is sampled.
/// </summary>
internal sealed class ScoreRun : RequestRun
{
    private readonly ScoringOptions _options;
    private readonly int[] _given;          // tokens whose log p is wanted, in order
    private readonly int _promptScored;     // how many of _given belong to the prompt (IncludePrompt)
    private readonly int[] _fullPrompt;
    private readonly int[] _continuation;
    private readonly int _width;            // alternatives asked of the pass: at least 1, for the greedy check
    private readonly TokenLogProb[] _entries;
    private float[] _row = [];              // [vocab] logits predicting _given[_next]
    private bool _hasRow;
    private int _next, _decodeRow = -1, _topHandle = -1;
    private bool _greedy = true;
    private long _evaluated;

    /// <param name="contextTokens">What is loaded into the sequence before teacher forcing starts (the whole prompt, or
    /// its first token when the prompt is scored too).</param>
    public ScoreRun(DecodingRequest request, int[] fullPrompt, int[] continuation, int[] contextTokens, Stopwatch clock, CancellationToken cancellation)
        : base(request, contextTokens, clock, cancellation)
    {
        _options = (ScoringOptions)request.Options;
        _fullPrompt = fullPrompt;
        _continuation = continuation;
        _promptScored = contextTokens.Length < fullPrompt.Length ? fullPrompt.Length - contextTokens.Length : 0;
        _given = [.. fullPrompt.AsSpan(contextTokens.Length), .. continuation];
        _width = Math.Max(1, _options.TopLogprobs);
        _entries = new TokenLogProb[_given.Length];
    }

    public override int SequencesNeeded => 1;

    public override void Prepare(StepContext context)
    {
        if (_row.Length > 0 || IsDone) return;
        var prompt = LoadPrompt(context, clear: false, forks: 0);
        _row = prompt.Logits.ToArray();
        _hasRow = true;
        if (_given.Length == 0) Finish(context);
    }

    public override void Plan(StepContext context)
    {
        _decodeRow = -1;
        if (IsDone || _hasRow || _next == 0) return;
        // The row that predicts _given[_next] comes from decoding the token before it.
        _decodeRow = context.Batch.AddDecode(Sequences[0], _given[_next - 1]);
    }

    public override void Score(StepContext context)
    {
        if (_decodeRow < 0) return;
        context.Outputs.Logits.Slice(_decodeRow * context.Vocab, context.Vocab).CopyTo(_row);
        _hasRow = true;
        _evaluated++;
    }

    public override void Propose(StepContext context)
    {
        _topHandle = -1;
        if (IsDone || !_hasRow) return;
        _topHandle = context.Batch.AddTopLogProbs(_row, _width, _given[_next]);
    }

    public override void Advance(StepContext context)
    {
        if (_topHandle < 0) return;
        var batch = context.Batch;
        var top = batch.TopLogProbs(_topHandle);
        double lp = batch.GivenTokenLogProb(_topHandle);
        // Greedy: the given token is as likely as the most likely one (ties count).
        if (_next >= _promptScored && (top.Length == 0 || lp < top[0].LogProb)) _greedy = false;
        _entries[_next] = new TokenLogProb(_given[_next], lp) { Top = _options.TopLogprobs > 0 ? top : [] };
        _next++;
        _hasRow = false;
        if (_next == _given.Length) Finish(context);
    }

    private void Finish(StepContext context)
    {
        var continuation = _entries.AsSpan(_promptScored).ToArray();
        double sum = 0;
        foreach (var e in continuation) sum += e.LogProb;
        IReadOnlyList<TokenLogProb>? prompt = _options.IncludePrompt
            ? [.. _fullPrompt.Take(_fullPrompt.Length - _promptScored).Select(t => new TokenLogProb(t, double.NaN)), .. _entries.AsSpan(0, _promptScored).ToArray()]
            : null;
        Emit(new ScoreCompleted(new ScoreResult(_fullPrompt, _continuation, continuation, sum, _greedy)
        {
            Text = context.Model.Detokenize(_continuation),
            PromptLogProbs = prompt,
            TokensEvaluated = _evaluated,
        }));
        IsDone = true;
    }
}
