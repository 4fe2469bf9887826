using System.Diagnostics;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Engine.Values;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Early rejection (speculative rejection) as a step function: N candidates from p decoded like best-of-n (same RNG rows,
/// so alpha = 0 is exactly best-of-N on the same candidates), and every <see cref="RejectionOptions.Every"/> tokens the
/// unfinished candidates are scored by the value (batched with every other request's values); the lowest
/// floor(alpha x unfinished) stop at once and their sequences go back to the engine for other requests. Budget mode
/// (<see cref="RejectionOptions.DecideAt"/>) makes one such decision only, at that many tokens. Finished
/// candidates are never stopped. At the end the survivor with the highest final reward wins (ties uniformly at random).
/// KL: KLhat with eps = p(winner) [M9] and the bound log N - (N-1)/N, which holds for any rule that returns one of N
/// i.i.d. candidates (docs/rejection.md).
/// </summary>
internal sealed class RejectionRun : RequestRun
{
    private readonly RejectionOptions _options;
    private readonly IReward _reward;
    private readonly IValueFunction _value;
    private ContinuationBatch? _rollout;
    private int _sample;
    private bool _needPrompt = true;
    private bool _deciding;
    private int[] _deciders = [];        // unfinished candidates whose values are queued this iteration
    private double[] _scores = [];
    private bool[] _rejected = [];
    private int[] _rejectedAt = [];      // tokens a rejected candidate had when it was stopped
    private double[] _rejectedScore = []; // its value then
    private readonly List<int> _survivors = [];
    private TimeSpan _sampleStart, _prefill;
    private int _cachedPrompt;

    public RejectionRun(DecodingRequest request, int[] promptTokens, Stopwatch clock, CancellationToken cancellation)
        : base(request, promptTokens, clock, cancellation)
    {
        _options = (RejectionOptions)request.Options;
        _options.ValidateSchedule();
        _reward = request.Reward!;
        _value = request.Value ?? new PrefixRewardValue(_reward);
    }

    public override int SequencesNeeded => _options.N;

    public override bool CanPark => true;

    // The survivors sample their next token from this decode's logits after the decision: keep those rows.
    public override void Park(StepContext context) => _rollout?.Hold(context);

    public override int LiveSequences => IsDone ? 0 : Sequences.Length;

    public override void Prepare(StepContext context)
    {
        if (!_needPrompt) return;
        int n = _options.N;
        // A later sample needs back the sequences its predecessor's rejections gave away; it waits until they are free.
        if (Sequences.Length < n)
        {
            SequencesWanted = n - Sequences.Length; // granted before the next Prepare, or the run waits in the queue again
            return;
        }
        _needPrompt = false;
        _sampleStart = Clock.Elapsed;
        var prompt = LoadPrompt(context, clear: _sample > 0, forks: n - 1);
        _cachedPrompt = prompt.CachedTokens;
        _prefill = Clock.Elapsed - _sampleStart;
        _rollout ??= new ContinuationBatch(context.Model, n);
        _scores = new double[n];
        _rejected = new bool[n];
        _rejectedAt = new int[n];
        _rejectedScore = new double[n];
        _survivors.Clear();
        _rollout.Start(CandidatesFromPrompt(n, (uint)(_sample * n), decodeLastToken: _reward.NeedsHiddenState), prompt.Logits, prompt.Hidden);
    }

    public override void Plan(StepContext context) => _rollout?.Plan(context.Batch);

    public override void Score(StepContext context)
    {
        var rollout = _rollout;
        if (rollout is null || _needPrompt || IsDone || _deciding) return;
        rollout.Collect(context);
        if (_options.Alpha == 0 || rollout.IsFinished) return;

        // A decision when the unfinished candidates (they step together) have generated a multiple of M tokens, or in
        // budget mode only when they have generated DecideAt tokens; the other iterations allocate nothing here.
        int first = 0;
        while (first < _options.N && rollout.IsDone(first)) first++;
        if (first == _options.N) return;
        int t = rollout.Tokens[first].Count;
        if (t == 0 || (_options.DecideAt is { } at ? t != at : t % _options.Every != 0)) return;
        var unfinished = Enumerable.Range(0, _options.N).Where(i => !rollout.IsDone(i)).ToArray();
        if (unfinished.Length < 2 || (int)Math.Floor(_options.Alpha * unfinished.Length) == 0) return;
        int d = context.Hidden;
        var hidden = new float[unfinished.Length * d];
        for (int j = 0; j < unfinished.Length; j++)
            rollout.FinalHidden.AsSpan(unfinished[j] * d, d).CopyTo(hidden.AsSpan(j * d));
        IReadOnlyList<RewardInput>? inputs = _value.NeedsInputs
            ? unfinished.Select(i => new RewardInput
            {
                Prompt = Request.Prompt,
                PromptTokens = PromptTokens,
                Tokens = rollout.Tokens[i].ToArray(),
                Text = rollout.CurrentText(i),
                IsFinished = false,
            }).ToArray()
            : null;
        _deciders = unfinished;
        _scores = new double[unfinished.Length];
        context.Batch.AddValues(this, _value, inputs, hidden, unfinished.Length, _scores);
        _deciding = true;
    }

    public override void Propose(StepContext context)
    {
        var rollout = _rollout;
        if (rollout is null || _needPrompt || IsDone) return;
        if (_deciding)
        {
            _deciding = false;
            Reject(context, rollout);
        }
        rollout.Propose(context);
    }

    public override void Advance(StepContext context)
    {
        var rollout = _rollout;
        if (rollout is null || _needPrompt || IsDone) return;
        rollout.Advance(context.Batch);
        bool deadline = false;
        if (!rollout.IsFinished && PastDeadline)
        {
            rollout.Stop();
            deadline = true;
        }
        if (!rollout.IsFinished) return;
        FinishSample(rollout, context.Hidden, deadline);
        _needPrompt = NextOutput(ref _sample, deadline);
    }

    /// <summary>
    /// Stops the floor(alpha x U) lowest-valued of the U unfinished candidates (ties: the higher candidate index goes
    /// first, a fixed rule the exact enumeration in the tests follows) and frees their sequences.
    /// </summary>
    private void Reject(StepContext context, ContinuationBatch rollout)
    {
        for (int j = 0; j < _scores.Length; j++)
            if (!double.IsFinite(_scores[j]))
                throw new TiltException($"value {_value.Description} returned {_scores[j]} for candidate {_deciders[j]}");
        int reject = (int)Math.Floor(_options.Alpha * _deciders.Length);
        var order = Enumerable.Range(0, _deciders.Length)
            .OrderBy(j => _scores[j])
            .ThenByDescending(j => _deciders[j])
            .Take(reject);
        foreach (int j in order)
        {
            int c = _deciders[j];
            _rejected[c] = true;
            _rejectedAt[c] = rollout.Tokens[c].Count;
            _rejectedScore[c] = _scores[j];
            rollout.Drop(c);
            Release(rollout.SequenceOf(c));
        }
        _survivors.Add(Enumerable.Range(0, _options.N).Count(i => !_rejected[i]));
    }

    private void FinishSample(ContinuationBatch rollout, int d, bool deadline)
    {
        int n = _options.N;
        var survivors = Enumerable.Range(0, n).Where(i => !_rejected[i]).ToArray();
        var inputs = survivors.Select(i => new RewardInput
        {
            Prompt = Request.Prompt,
            Text = rollout.FinishText(i),
            Tokens = rollout.Tokens[i].ToArray(),
            IsFinished = rollout.Stopped[i],
            FinalHidden = rollout.FinalHidden.AsMemory(i * d, d).ToArray(),
        }).ToArray();
        var survivorRewards = new double[survivors.Length];
        _reward.ScoreChecked(inputs, survivorRewards);
        // Rejected candidates cannot win: -inf keeps the tie-breaking of best-of-n (alpha = 0 picks exactly as it does).
        var rewards = Enumerable.Repeat(double.NegativeInfinity, n).ToArray();
        for (int j = 0; j < survivors.Length; j++) rewards[survivors[j]] = survivorRewards[j];
        int winner = BestOfNRun.PickWinner(rewards, _options.Seed, _options.RequestId, _sample);
        // Reported scores: final rewards of survivors, values at rejection of the others (finite, unlike the -inf above).
        var reported = Enumerable.Range(0, n).Select(i => _rejected[i] ? _rejectedScore[i] : rewards[i]).ToArray();
        Emit(new CandidatesScored(_sample, 0, reported, winner));

        var accepted = Clock.Elapsed - _sampleStart;
        int w = Array.IndexOf(survivors, winner);
        var winnerInput = inputs[w];
        double logProb = rollout.LogProb[winner];
        var estimate = new KlReport(KlEstimators.KlHatFromLogProbability(logProb, n), KlMethod.BestOfNEstimate);
        var tokenLogProbs = WantsLogprobs ? rollout.TokenLogProbs[winner].ToArray() : null;
        Emit(new TextAccepted(_sample, winnerInput.Tokens, winnerInput.Text, estimate.Value) { LogProb = logProb, TokenLogProbs = tokenLogProbs });

        // What the rejected candidates would still have cost, estimated by the survivors' mean length.
        double survivorLength = survivors.Average(i => (double)rollout.Tokens[i].Count);
        long saved = (long)Math.Round(Enumerable.Range(0, n).Where(i => _rejected[i]).Sum(i => Math.Max(0, survivorLength - _rejectedAt[i])));
        var candidates = _options.ReturnCandidates
            ? Enumerable.Range(0, n).Select(i => new ScoredCandidate(i, _rejected[i] ? rollout.CurrentText(i) : inputs[Array.IndexOf(survivors, i)].Text,
                rollout.Tokens[i].ToArray(), reported[i], rollout.LogProb[i], rollout.Stopped[i]) { Rejected = _rejected[i] }).ToArray()
            : [];
        var finish = deadline ? AlignFinish.Deadline
            : rollout.StoppedByRequest[winner] ? AlignFinish.Stop : rollout.Stopped[winner] ? AlignFinish.Eos : AlignFinish.Length;
        EmitResult(new AlignedSample(_sample, winnerInput.Text, winnerInput.Tokens, rewards[winner], logProb,
            estimate, new KlReport(Math.Log(n) - (n - 1.0) / n, KlMethod.BestOfNBound), finish, rollout.TokensDecoded,
            new AlignTimings(_prefill, accepted, Clock.Elapsed - _sampleStart, rollout.DecodeCalls) { ModelTime = rollout.ModelTime }, candidates)
        {
            CachedPromptTokens = _cachedPrompt,
            TokenLogProbs = tokenLogProbs,
            SurvivorsPerDecision = _survivors.ToArray(),
            TokensSavedEstimate = saved,
        });
    }
}
