using System.Diagnostics;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Best-of-n [M4] as a step function: n candidates from p decoded in the engine's batch (sharing the prompt's KV), scored
/// by the reward in one call when all are finished, the highest kept (ties uniformly at random from the request's RNG, so
/// the output follows the exact best-of-n law [M5]). KL: the estimate KLhat(eps = p(winner | x)) [M9] and the bound
/// log n - (n-1)/n [M7]. Independent outputs (<see cref="AlignOptions.Samples"/>) run one after another on the same
/// sequences; the deadline returns the output in progress as it stands and starts no other.
/// </summary>
internal sealed class BestOfNRun : RequestRun
{
    private readonly AlignOptions _options;
    private readonly int _n;
    private readonly bool _returnCandidates;
    private readonly double? _lambda; // soft best-of-n [M27]; null: the argmax [M4]
    private readonly IReward _reward;
    private ContinuationBatch? _rollout;
    private int _sample;
    private int _step;
    private bool _needPrompt = true;
    private TimeSpan _sampleStart;
    private TimeSpan _prefill;
    private int _cachedPrompt;

    public BestOfNRun(DecodingRequest request, int[] promptTokens, Stopwatch clock, CancellationToken cancellation)
        : base(request, promptTokens, clock, cancellation)
    {
        _options = (AlignOptions)request.Options;
        var pool = (CandidatePoolOptions)request.Options;
        (_n, _returnCandidates, _lambda) = (pool.N, pool.ReturnCandidates, (pool as SoftBestOfNOptions)?.Lambda);
        _reward = request.Reward!;
    }

    public override int SequencesNeeded => _n;

    public override int LiveSequences => IsDone ? 0 : _rollout?.Live ?? Sequences.Length;

    public override void Prepare(StepContext context)
    {
        if (!_needPrompt) return;
        _needPrompt = false;
        _sampleStart = Clock.Elapsed;
        int n = _n;
        var prompt = LoadPrompt(context, clear: _sample > 0, forks: n - 1);
        _cachedPrompt = prompt.CachedTokens;
        _prefill = Clock.Elapsed - _sampleStart;
        _rollout ??= new ContinuationBatch(context.Model, n);
        _rollout.Start(CandidatesFromPrompt(n, (uint)(_sample * n), decodeLastToken: _reward.NeedsHiddenState), prompt.Logits, prompt.Hidden);
        _step = 0;
    }

    public override void Plan(StepContext context) => _rollout?.Plan(context.Batch);

    public override void Score(StepContext context) => _rollout?.Collect(context);

    public override void Propose(StepContext context) => _rollout?.Propose(context);

    public override void Advance(StepContext context)
    {
        var rollout = _rollout!;
        rollout.Advance(context.Batch);
        Emit(new StepCompleted(_sample, _step++, rollout.Live));
        bool deadline = false;
        if (!rollout.IsFinished && PastDeadline)
        {
            rollout.Stop();
            deadline = true;
        }
        if (!rollout.IsFinished) return;

        // The candidates' KV is no longer needed: the last output gives its sequences back while its rewards are scored.
        bool last = deadline || _sample + 1 == _options.Samples || PastDeadline;
        if (last)
            foreach (int s in Sequences) Release(s);
        FinishSample(context, rollout, context.Info.HiddenSize, deadline);
    }

    /// <summary>Scores the candidates beside the scheduler; then picks and emits the output and starts the next or ends.</summary>
    private void FinishSample(StepContext context, ContinuationBatch rollout, int d, bool deadline)
    {
        int n = _n;
        var inputs = new RewardInput[n];
        for (int i = 0; i < n; i++)
        {
            inputs[i] = new RewardInput
            {
                Prompt = Request.Prompt,
                Text = rollout.FinishText(i),
                Tokens = rollout.Tokens[i].ToArray(),
                IsFinished = rollout.Stopped[i],
                FinalHidden = rollout.FinalHidden.AsMemory(i * d, d).ToArray(),
            };
        }
        var rewards = new double[n];
        var budget = ScoringBudget.Until(_options.Deadline, Clock, Cancellation);
        int scored = 0;
        ScoreAside(context, () => scored = _reward.ScoreWithin(inputs, rewards, budget), _ =>
        {
            bool cut = Pick(rollout, inputs, rewards, scored, deadline);
            _needPrompt = NextOutput(ref _sample, cut);
        });
    }

    /// <summary>Picks and emits the output from the scored candidates; true when the deadline cut it (scoring included).</summary>
    private bool Pick(ContinuationBatch rollout, RewardInput[] inputs, double[] rewards, int scored, bool deadline)
    {
        int n = _n;
        // The deadline covers scoring: past it, the output is the best of the candidates scored so far.
        deadline |= scored < n;
        var pool = scored == n ? rewards : rewards[..scored];
        int winner = _lambda is { } lambda
            ? DrawSoftWinner(pool, lambda, _options.Seed, _options.RequestId, _sample)
            : PickWinner(pool, _options.Seed, _options.RequestId, _sample);
        Emit(new CandidatesScored(_sample, 0, pool.ToArray(), winner));

        var accepted = Clock.Elapsed - _sampleStart;
        var winnerInput = inputs[winner];
        double logProb = rollout.LogProb[winner];
        double bound = Math.Log(scored) - (scored - 1.0) / scored;
        var estimate = _lambda is { } l
            ? new KlReport(Math.Min(bound, SelectionKl(SoftWeights(pool, l))), KlMethod.SoftBestOfNEstimate)
            : new KlReport(KlEstimators.KlHatFromLogProbability(logProb, scored), KlMethod.BestOfNEstimate);
        var tokenLogProbs = WantsLogprobs ? rollout.TokenLogProbs[winner].ToArray() : null;
        Emit(new TextAccepted(_sample, winnerInput.Tokens, winnerInput.Text, estimate.Value) { LogProb = logProb, TokenLogProbs = tokenLogProbs });

        var candidates = _returnCandidates
            ? inputs.Take(scored).Select((c, i) => new ScoredCandidate(i, c.Text, c.Tokens, rewards[i], rollout.LogProb[i], c.IsFinished)).ToArray()
            : [];
        var finish = deadline ? AlignFinish.Deadline
            : rollout.StoppedByRequest[winner] ? AlignFinish.Stop : rollout.Stopped[winner] ? AlignFinish.Eos : AlignFinish.Length;
        EmitResult(new AlignedSample(_sample, winnerInput.Text, winnerInput.Tokens, rewards[winner], logProb,
            estimate, new KlReport(bound, KlMethod.BestOfNBound), finish, rollout.TokensDecoded,
            new AlignTimings(_prefill, accepted, Clock.Elapsed - _sampleStart, rollout.DecodeCalls) { ModelTime = rollout.ModelTime }, candidates)
        {
            WinRateVsCandidates = scored > 1 ? WinRateAgainstOthers(pool, winner) : null,
            CachedPromptTokens = _cachedPrompt,
            TokenLogProbs = tokenLogProbs,
        });
        return deadline;
    }

    /// <summary>Highest reward; ties broken uniformly by the request's RNG ([M4]: uniform among the tied draws).</summary>
    internal static int PickWinner(double[] rewards, ulong seed, uint requestId, int sample)
    {
        double best = rewards.Max();
        int ties = rewards.Count(r => r == best);
        int pick = ties == 1 ? 0 : (int)(Philox.Bits(new RngKey(seed, requestId, uint.MaxValue, (uint)sample), 0) % (uint)ties);
        for (int i = 0; i < rewards.Length; i++)
            if (rewards[i] == best && pick-- == 0) return i;
        throw new UnreachableException();
    }

    /// <summary>
    /// P(I = i | candidates) of soft best-of-n [M27]: exp(r_i / lambda) normalized, computed as exp((r_i - max r) / lambda) so
    /// no lambda, however small, overflows (lambda -> 0 puts equal weight on the tied maxima: best-of-n's law).
    /// </summary>
    internal static double[] SoftWeights(double[] rewards, double lambda)
    {
        double best = rewards.Max();
        var w = new double[rewards.Length];
        double sum = 0;
        for (int i = 0; i < w.Length; i++) sum += w[i] = Math.Exp((rewards[i] - best) / lambda);
        for (int i = 0; i < w.Length; i++) w[i] /= sum;
        return w;
    }

    /// <summary>KL of a selection distribution from the uniform one, log n - H(w): 0 for a uniform pick, log n for a sure one.</summary>
    internal static double SelectionKl(double[] w)
    {
        double entropy = 0;
        foreach (double x in w)
            if (x > 0) entropy -= x * Math.Log(x);
        return Math.Max(0, Math.Log(w.Length) - entropy);
    }

    /// <summary>The soft best-of-n winner: an inverse-CDF draw from <see cref="SoftWeights"/> with the request's own RNG
    /// (the same counter as best-of-n's tie break), so the draw does not depend on what shares the batch.</summary>
    internal static int DrawSoftWinner(double[] rewards, double lambda, ulong seed, uint requestId, int sample)
    {
        var w = SoftWeights(rewards, lambda);
        // 53 random bits -> u in [0, 1).
        ulong bits = ((ulong)Philox.Bits(new RngKey(seed, requestId, uint.MaxValue, (uint)sample), 0) << 21)
                     ^ Philox.Bits(new RngKey(seed, requestId, uint.MaxValue, (uint)sample), 1);
        double u = (bits & ((1UL << 53) - 1)) / (double)(1UL << 53);
        double cumulative = 0;
        for (int i = 0; i < w.Length; i++)
        {
            cumulative += w[i];
            if (u < cumulative) return i;
        }
        // Rounding left u above the last partial sum: the last candidate with weight.
        for (int i = w.Length - 1; i >= 0; i--)
            if (w[i] > 0) return i;
        throw new UnreachableException();
    }

    /// <summary>Fraction of the other candidates the winner beats, ties counting 1/2 [M10].</summary>
    private static double WinRateAgainstOthers(double[] rewards, int winner)
    {
        double wins = 0;
        for (int i = 0; i < rewards.Length; i++)
        {
            if (i == winner) continue;
            wins += rewards[winner] > rewards[i] ? 1 : rewards[winner] == rewards[i] ? 0.5 : 0;
        }
        return wins / (rewards.Length - 1);
    }
}
