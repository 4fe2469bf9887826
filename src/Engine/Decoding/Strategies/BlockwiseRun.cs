using System.Diagnostics;
using System.Runtime.InteropServices;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Engine.Text;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Blockwise controlled decoding [M18] as a step function: from the current prefix, K candidate blocks of M tokens are
/// drawn from p in the engine's batch, each block is scored by the value of its last hidden state (batched with every
/// other request's values) or by the reward when it finished the text, the best block is kept (or one is sampled
/// ∝ exp(V/beta)), streamed, and its sequence becomes the prefix the next K blocks fork from. With M at least the whole
/// response and argmax selection this is exactly best-of-K with the value as reward [M18]. KL per block is bounded by
/// log K - (K-1)/K and estimated by KLhat with eps = p(block | prefix) [M19].
/// </summary>
internal sealed class BlockwiseRun : BlockSearchRun
{
    private readonly BlockwiseOptions _options;
    private int[] _order = [];      // [K] sequence of each candidate: _order[0] holds the prefix

    // The output in progress.
    private float[] _prefixLogits = [];
    private float[] _prefixHidden = [];
    private readonly List<double> _blockLogProbs = [];
    private int _block;

    public BlockwiseRun(DecodingRequest request, int[] promptTokens, Stopwatch clock, CancellationToken cancellation)
        : base(request, promptTokens, clock, cancellation, ((BlockwiseOptions)request.Options).K)
    {
        _options = (BlockwiseOptions)request.Options;
        _out = new OutputInProgress(Stops);
    }

    private readonly OutputInProgress _out; // the output being written

    public override void Prepare(StepContext context)
    {
        if (!NeedPrompt) return;
        NeedPrompt = false;
        var start = Clock.Elapsed;
        var prompt = LoadPrompt(context, clear: SampleIndex > 0, forks: 0);
        _out.Begin(context, Clock, start, prompt);
        _order = Sequences.ToArray();
        _prefixLogits = prompt.Logits.ToArray();
        _prefixHidden = prompt.Hidden.ToArray();
        _blockLogProbs.Clear();
        _block = 0;
        Rollout ??= new ContinuationBatch(context.Model, K);
        Scores = new double[K];
        if (PastDeadline) Finish(context, AlignFinish.Deadline);
        else StartBlock(context);
    }

    protected override int StepCandidates => K;

    protected override RewardInput ValueInput(ContinuationBatch rollout, int i) => new()
    {
        Prompt = Request.Prompt,
        PromptTokens = PromptTokens,
        Tokens = [.. _out.Tokens, .. rollout.TokenSpan(i)],
        Text = CandidateText(rollout, i),
        IsFinished = rollout.Stopped[i],
    };

    protected override void OnScored(StepContext context) => AcceptBlock(context);

    private void StartBlock(StepContext context)
    {
        // Candidate 0 continues on the prefix's own sequence; the others fork it.
        for (int i = 1; i < K; i++) context.Kv.Copy(_order[0], _order[i]);
        int m = Math.Min(_options.BlockSize, _options.MaxTokens - _out.Tokens.Count);
        Rollout!.Start(new ContinuationBatch.Settings
        {
            Candidates = K,
            Sequences = _order,
            Rows = Enumerable.Range(0, K).Select(i => (uint)(SampleIndex * K + i)).ToArray(),
            MaxTokens = m,
            Sampling = _options.Sampling,
            Seed = _options.Seed,
            Request = _options.RequestId,
            StepOffset = _out.Tokens.Count,
            // The winner's next block starts from its logits after its last token.
            DecodeLastToken = true,
            TrackText = false,
            Stop = Stops,
            StopPrefix = _out.Decoder,
            StopTail = Stops is { HasStrings: true } ? _out.Text.Span[Math.Max(0, _out.Text.Length - (Stops.MaxLength - 1))..].ToString() : "",
            Logprobs = Request.Options.Logprobs,
            TopLogprobs = Request.Options.TopLogprobs,

        }, _prefixLogits, _prefixHidden);
    }

    /// <summary>Scores finished blocks by the reward, picks the winner, streams it and starts the next block or finishes.</summary>
    private void AcceptBlock(StepContext context)
    {
        var rollout = Rollout!;
        int d = context.Hidden, vocab = context.Vocab;
        _out.Evaluated += rollout.TokensDecoded;
        _out.DecodeCalls += rollout.DecodeCalls;
        _out.ModelTime += rollout.ModelTime;

        ScoreFinishedBlocks(Reward, Request.Prompt, rollout, K, d, i => CandidateText(rollout, i),
            i => [.. _out.Tokens, .. rollout.TokenSpan(i)], Scores, Value.Description);

        int winner = SelectBlock(Scores, _options, SampleIndex, _block);
        var blockTokens = rollout.Tokens[winner];
        _out.Tokens.AddRange(blockTokens);
        _out.LogProb += rollout.LogProb[winner];
        _blockLogProbs.Add(rollout.LogProb[winner]);
        _out.TokenLogProbs.AddRange(rollout.TokenLogProbs[winner]);
        for (int j = 0; j < blockTokens.Count; j++)
        {
            int before = _out.Text.Length;
            _out.Text.Append(_out.Decoder.Push(blockTokens[j]));
            if (j == blockTokens.Count - 1 && rollout.StoppedByRequest[winner] && Stops!.IsStopToken(blockTokens[j])) _out.Text.StopAtToken(before);
        }
        _out.Accepted(Clock);
        Emit(new CandidatesScored(SampleIndex, _block, Scores.ToArray(), winner));
        // A block that ends the output also streams what was held back for a possible stop string.
        bool last = rollout.Stopped[winner] || _out.Tokens.Count >= _options.MaxTokens;
        if (last && !_out.Text.Stopped) _out.Text.Append(_out.Decoder.Flush());
        Emit(new TextAccepted(SampleIndex, blockTokens.ToArray(), _out.Text.TakeStreamable(final: last), BlockwiseKl.Estimate(CollectionsMarshal.AsSpan(_blockLogProbs), K))
        {
            LogProb = rollout.LogProb[winner],
            TokenLogProbs = WantsLogprobs ? rollout.TokenLogProbs[winner].ToArray() : null,
        });
        _block++;

        // The winner's sequence becomes the prefix.
        (_order[0], _order[winner]) = (_order[winner], _order[0]);
        rollout.FinalLogits.AsSpan(winner * vocab, vocab).CopyTo(_prefixLogits);
        rollout.FinalHidden.AsSpan(winner * d, d).CopyTo(_prefixHidden);

        if (rollout.StoppedByRequest[winner]) Finish(context, AlignFinish.Stop);
        else if (rollout.Stopped[winner]) Finish(context, AlignFinish.Eos);
        else if (_out.Tokens.Count >= _options.MaxTokens) Finish(context, AlignFinish.Length);
        else if (PastDeadline) Finish(context, AlignFinish.Deadline);
        else StartBlock(context);
    }

    private void Finish(StepContext context, AlignFinish finish)
    {
        if (!_out.Text.Stopped) _out.Text.Append(_out.Decoder.Flush());
        string text = _out.Text.ToString();
        int[] tokens = _out.Tokens.ToArray();
        // A deadline can end the output while text is still held back for a possible stop string.
        if (_out.Text.TakeStreamable(final: true) is { Length: > 0 } rest)
            Emit(new TextAccepted(SampleIndex, [], rest, BlockwiseKl.Estimate(CollectionsMarshal.AsSpan(_blockLogProbs), K)));
        var reward = new double[1];
        Reward.ScoreChecked([new RewardInput { Prompt = Request.Prompt, Text = text, Tokens = tokens, IsFinished = finish is AlignFinish.Eos or AlignFinish.Stop, FinalHidden = _prefixHidden.ToArray() }], reward);
        var perBlock = Enumerable.Repeat(K, _block).ToArray();
        EmitResult(new AlignedSample(SampleIndex, text, tokens, reward[0], _out.LogProb,
            new KlReport(BlockwiseKl.Estimate(CollectionsMarshal.AsSpan(_blockLogProbs), K), KlMethod.BlockEstimate),
            new KlReport(BlockwiseKl.Bound(perBlock), KlMethod.BlockBound), finish, _out.Evaluated,
            _out.Timings(Clock), [])
        {
            CachedPromptTokens = _out.CachedPrompt,
            TokenLogProbs = WantsLogprobs ? _out.TokenLogProbs.ToArray() : null,
        });
        NeedPrompt = NextOutput(ref SampleIndex, finish == AlignFinish.Deadline);
    }

    /// <summary>
    /// The text of the output if candidate block <paramref name="i"/> were accepted: cut at a stop string that it completes
    /// (which may start in the accepted text), without a stop token's text unless the request keeps stops.
    /// </summary>
    private string CandidateText(ContinuationBatch rollout, int i)
    {
        var block = rollout.TokenSpan(i);
        string prefix = _out.Text.ToString();
        if (!rollout.StoppedByRequest[i]) return prefix + _out.Decoder.Preview(block);
        string text = prefix + _out.Decoder.Preview(block);
        int end = Stops!.HasStrings ? Stops.Find(text, prefix.Length) : -1;
        if (end >= 0) return text[..end];
        return Stops.IncludeStop ? text : prefix + _out.Decoder.Preview(block[..^1]);
    }

    /// <summary>
    /// Argmax with ties broken uniformly at random ([M4]: uniform among tied draws, so one block of M >= length is exactly
    /// best-of-K), or a draw ∝ exp(V/beta); both from the step kernels' block selection with noise keyed by the block, so
    /// the choice is reproducible.
    /// </summary>
    private static int SelectBlock(double[] scores, BlockwiseOptions options, int sample, int block)
    {
        var key = new RngKey(options.Seed, options.RequestId, uint.MaxValue - (uint)block, (uint)sample);
        var values = new float[scores.Length];
        if (options.Selection == BlockSelectionMode.Sample)
        {
            KernelValues.ShiftToFloat(scores, values);
            return BlockSelection.Sample(values, (float)options.Beta, key, out _);
        }
        double best = scores.Max();
        for (int i = 0; i < scores.Length; i++) values[i] = scores[i] == best ? 0f : float.NegativeInfinity;
        return BlockSelection.Sample(values, float.PositiveInfinity, key, out _);
    }
}
