using System.Diagnostics;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Reward-guided beam search over blocks (<see cref="BeamOptions"/>) as a step function. Every step draws K candidate blocks
/// of M tokens from p in the engine's batch, K / (beams alive) from each unfinished beam (one rollout: candidate i continues
/// beam <c>StartGroup[i]</c>, forked from its sequence), scores unfinished blocks by the value and finished ones by the
/// reward (values batched with every other request's), and keeps the best B of those blocks and of the finished beams
/// still kept. It ends when every kept beam is finished; the output is the kept beam with the highest reward. B = 1 draws
/// exactly what blockwise CD with argmax selection draws (same RNG rows, same tie-breaking). Text is streamed once every
/// kept beam agrees on it. KL: the blockwise estimate and bound over the winner's blocks, with K candidates a block
/// (docs/math.md says what that is for B > 1).
/// </summary>
internal sealed class BeamRun : BlockSearchRun
{
    private readonly BeamOptions _options;

    // The search in progress.
    private List<Beam> _kept = [];
    private Beam[] _parentOf = [];   // [K] the beam each candidate of the current step continues
    private int _block;
    private long _evaluated;
    private int _decodeCalls, _cachedPrompt;
    private TimeSpan _start, _prefill, _modelTime;
    private TimeSpan? _firstText;
    private BeamStream _stream = null!;

    public BeamRun(DecodingRequest request, int[] promptTokens, Stopwatch clock, CancellationToken cancellation)
        : base(request, promptTokens, clock, cancellation, ((BeamOptions)request.Options).K) => _options = (BeamOptions)request.Options;

    public override void Prepare(StepContext context)
    {
        if (!NeedPrompt) return;
        NeedPrompt = false;
        _start = Clock.Elapsed;
        var prompt = LoadPrompt(context, clear: SampleIndex > 0, forks: 0);
        _prefill = Clock.Elapsed - _start;
        _cachedPrompt = prompt.CachedTokens;
        _kept = [Beam.Root(context, Stops, Sequences[0], prompt)];
        _block = 0;
        _evaluated = 0;
        _decodeCalls = 0;
        _modelTime = TimeSpan.Zero;
        _firstText = null;
        _stream = new BeamStream(context.Model.CreateTextDecoder(), Stops);
        Rollout ??= new ContinuationBatch(context.Model, K);
        Scores = new double[K];
        StartStep(context);
    }

    protected override int StepCandidates => _parentOf.Length;

    protected override RewardInput ValueInput(ContinuationBatch rollout, int i) => new()
    {
        Prompt = Request.Prompt,
        PromptTokens = PromptTokens,
        Tokens = [.. _parentOf[i].Tokens, .. rollout.TokenSpan(i)],
        Text = _parentOf[i].CandidateText(rollout, i, Stops),
        IsFinished = rollout.Stopped[i],
    };

    protected override void OnScored(StepContext context) => Select(context);

    /// <summary>Forks every unfinished kept beam into its share of the K blocks and starts the step's rollout.</summary>
    private void StartStep(StepContext context)
    {
        var alive = _kept.Where(b => b.Finish is null).ToList();
        int each = K / alive.Count, n = each * alive.Count;
        // Sequences not holding a live beam take the forks; beam j's first candidate continues on its own sequence.
        var spare = new Queue<int>(Sequences.Except(alive.Select(b => b.Sequence)));
        var sequences = new int[n];
        var groups = new int[n];
        _parentOf = new Beam[n];
        for (int j = 0; j < alive.Count; j++)
        {
            for (int e = 0; e < each; e++)
            {
                int i = j * each + e;
                sequences[i] = e == 0 ? alive[j].Sequence : spare.Dequeue();
                if (e > 0) context.Kv.Copy(alive[j].Sequence, sequences[i]);
                groups[i] = j;
                _parentOf[i] = alive[j];
            }
        }
        int length = alive[0].Tokens.Count; // unfinished beams grow block by block together
        int vocab = context.Vocab, d = context.Hidden;
        var logits = new float[alive.Count * vocab];
        var hidden = new float[alive.Count * d];
        for (int j = 0; j < alive.Count; j++)
        {
            alive[j].Logits.CopyTo(logits, j * vocab);
            alive[j].Hidden.CopyTo(hidden, j * d);
        }
        var settings = CandidatesFromPrompt(n, (uint)(SampleIndex * K), decodeLastToken: true) with
        {
            Sequences = sequences,
            MaxTokens = Math.Min(_options.BlockSize, _options.MaxTokens - length),
            StepOffset = length,
            TrackText = false,
            StartGroup = groups,
            StopPrefixes = [.. alive.Select(b => b.Decoder)],
            StopTails = [.. alive.Select(b => b.StopTail(Stops))],
        };
        Rollout!.Start(settings, logits, hidden);
    }

    /// <summary>Scores finished blocks by the reward, keeps the best B of the blocks and finished beams, streams what they agree on.</summary>
    private void Select(StepContext context)
    {
        var rollout = Rollout!;
        int n = _parentOf.Length, d = context.Hidden;
        _evaluated += rollout.TokensDecoded;
        _decodeCalls += rollout.DecodeCalls;
        _modelTime += rollout.ModelTime;
        ScoreFinishedBlocks(Reward, Request.Prompt, rollout, n, d, i => _parentOf[i].CandidateText(rollout, i, Stops),
            i => [.. _parentOf[i].Tokens, .. rollout.TokenSpan(i)], Scores, Value.Description);

        // The pool: this step's blocks, then the finished beams still kept (their reward is their score).
        var carried = _kept.Where(b => b.Finish is not null).ToList();
        var pool = new double[n + carried.Count];
        Scores.AsSpan(0, n).CopyTo(pool);
        for (int j = 0; j < carried.Count; j++) pool[n + j] = carried[j].Reward;
        var picks = PickBest(pool, Math.Min(_options.Beams, pool.Length));
        Emit(new CandidatesScored(SampleIndex, _block, pool, picks[0]));

        var kept = new List<Beam>(picks.Length);
        foreach (int p in picks)
            kept.Add(p >= n ? carried[p - n] : _parentOf[p].Extend(context, rollout, p, Scores[p], Stops, _options.MaxTokens, WantsLogprobs));
        _kept = kept;
        _block++;
        // A beam cut by max tokens is finished too; its reward is that of its whole text.
        foreach (var beam in _kept.Where(b => b.Finish == AlignFinish.Length && double.IsNaN(b.Reward)))
            beam.Reward = Reward.Score(new RewardInput { Prompt = Request.Prompt, Text = beam.Text.ToString(), Tokens = [.. beam.Tokens], IsFinished = false, FinalHidden = beam.Hidden });

        if (_stream.Agree(_kept, out var tokens, out string text))
        {
            _firstText ??= Clock.Elapsed - _start;
            Emit(new TextAccepted(SampleIndex, tokens, text, BlockwiseKl.Estimate([.. _kept[0].BlockLogProbs], K)));
        }
        if (_kept.All(b => b.Finish is not null)) Finish();
        else if (PastDeadline) Finish(deadline: true);
        else StartStep(context);
    }

    /// <summary>
    /// The best <paramref name="count"/> entries, best first. The first pick is blockwise CD's argmax draw (uniform among
    /// ties, keyed by the block), so one beam is blockwise CD; later picks break ties by keys of their own.
    /// </summary>
    private int[] PickBest(double[] scores, int count)
    {
        var picks = new int[count];
        var values = new float[scores.Length];
        var taken = new bool[scores.Length];
        for (int p = 0; p < count; p++)
        {
            double best = double.NegativeInfinity;
            for (int i = 0; i < scores.Length; i++)
                if (!taken[i] && scores[i] > best) best = scores[i];
            for (int i = 0; i < scores.Length; i++) values[i] = !taken[i] && scores[i] == best ? 0f : float.NegativeInfinity;
            uint row = p == 0 ? (uint)SampleIndex : 0x8000_0000u | (uint)(SampleIndex * 256 + p);
            var key = new RngKey(_options.Seed, _options.RequestId, uint.MaxValue - (uint)_block, row);
            picks[p] = BlockSelection.Sample(values, float.PositiveInfinity, key, out _);
            taken[picks[p]] = true;
        }
        return picks;
    }

    /// <summary>Emits the kept beam with the highest reward (a deadline ends unfinished beams where they stand).</summary>
    private void Finish(bool deadline = false)
    {
        foreach (var beam in _kept.Where(b => b.Finish is null))
        {
            beam.Finish = AlignFinish.Deadline;
            beam.Reward = Reward.Score(new RewardInput { Prompt = Request.Prompt, Text = beam.Text.ToString(), Tokens = [.. beam.Tokens], IsFinished = false, FinalHidden = beam.Hidden });
        }
        var rewards = _kept.Select(b => b.Reward).ToArray();
        var winner = _kept[BestOfNRun.PickWinner(rewards, _options.Seed, _options.RequestId, SampleIndex)];
        string text = winner.Text.ToString();
        var rest = _stream.Rest(winner, text);
        if (rest.Text.Length > 0 || rest.Tokens.Length > 0)
        {
            _firstText ??= Clock.Elapsed - _start;
            Emit(new TextAccepted(SampleIndex, rest.Tokens, rest.Text, BlockwiseKl.Estimate([.. winner.BlockLogProbs], K)));
        }
        var perBlock = Enumerable.Repeat(K, winner.BlockLogProbs.Count).ToArray();
        var blocks = winner.BlockLogProbs.ToArray();
        EmitResult(new AlignedSample(SampleIndex, text, [.. winner.Tokens], winner.Reward, winner.LogProb,
            new KlReport(BlockwiseKl.Estimate(blocks, K), KlMethod.BlockEstimate),
            new KlReport(BlockwiseKl.Bound(perBlock), KlMethod.BlockBound), deadline ? AlignFinish.Deadline : winner.Finish!.Value, _evaluated,
            new AlignTimings(_prefill, _firstText ?? Clock.Elapsed - _start, Clock.Elapsed - _start, _decodeCalls) { ModelTime = _modelTime }, [])
        {
            CachedPromptTokens = _cachedPrompt,
            TokenLogProbs = WantsLogprobs ? [.. winner.TokenLogProbs] : null,
        });
        NeedPrompt = NextOutput(ref SampleIndex, deadline);
    }
}
