using System.Diagnostics;
using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Sampling;
using Tilt.Engine.Statistics;
using Tilt.Kernels;

namespace Tilt.Engine.Strategies;

/// <summary>
/// Best-of-n [M4]: draws n candidates from p as one batch that shares the prompt's KV cache (prefill once,
/// fork, one decode per step over all live candidates), scores the finished candidates with the reward in
/// one call, and returns the highest; ties are broken uniformly at random (from the request's RNG), so the
/// output follows the exact best-of-n distribution [M5]. KL is reported as the estimate KLhat(eps) with
/// eps = p(winner | x) [M9] and the bound log n - (n-1)/n [M7].
/// </summary>
public sealed class BestOfNSampler
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly IReward _reward;

    public BestOfNSampler(ILanguageModel model, IStepKernels kernels, IReward reward)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
    }

    /// <summary>All outputs; built on <see cref="StreamAsync"/>.</summary>
    public Task<IReadOnlyList<AlignedSample>> GenerateAsync(string prompt, BestOfNOptions options, CancellationToken cancellationToken = default) =>
        AlignStream.CollectAsync(StreamAsync(prompt, options, cancellationToken));

    /// <summary>Streams progress, the candidates' rewards and each winner.</summary>
    public async IAsyncEnumerable<AlignEvent> StreamAsync(string prompt, BestOfNOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        await Task.Yield();
        var requestClock = Stopwatch.StartNew();
        int[] promptTokens = _model.Tokenize(prompt);
        PromptLimits.Check(_model.Info, promptTokens.Length, options.MaxTokens);
        int n = options.N, d = _model.Info.HiddenSize;

        using var session = _model.CreateSession(new SessionOptions
        {
            MaxSequences = n,
            MaxSequenceLength = promptTokens.Length + options.MaxTokens,
            Threads = options.Threads,
            KvCacheType = options.KvCacheType,
        });
        var rollout = new CandidateRollout(session, _kernels, _model.Info);
        int[] sequences = Enumerable.Range(0, n).ToArray();
        var rewards = new double[n];

        for (int sample = 0; sample < options.Samples; sample++)
        {
            if (AlignStream.PastDeadline(options, requestClock) && sample > 0) yield break;
            var clock = Stopwatch.StartNew();
            for (int s = 0; s < n; s++) session.RemoveSequence(s);
            var (startLogits, startHidden) = PromptFork.PrefillAndFork(session, promptTokens, n);
            var prefill = clock.Elapsed;
            var settings = new CandidateRollout.Settings
            {
                Candidates = n,
                Sequences = sequences,
                Rows = Enumerable.Range(0, n).Select(i => (uint)(sample * n + i)).ToArray(),
                MaxTokens = options.MaxTokens,
                Sampling = options.Sampling,
                Seed = options.Seed,
                Request = options.RequestId,
                DecodeLastToken = _reward.NeedsHiddenState,
            };

            bool deadline = false;
            int step = 0;
            foreach (int live in rollout.Run(settings, startLogits, startHidden))
            {
                cancellationToken.ThrowIfCancellationRequested();
                yield return new StepCompleted(sample, step++, live);
                if (live > 0 && AlignStream.PastDeadline(options, requestClock))
                {
                    deadline = true;
                    break;
                }
            }

            var inputs = new RewardInput[n];
            for (int i = 0; i < n; i++)
            {
                var tokens = rollout.Tokens[i];
                inputs[i] = new RewardInput
                {
                    Prompt = prompt,
                    Text = _model.Detokenize(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens)),
                    Tokens = tokens.ToArray(),
                    IsFinished = rollout.Stopped[i],
                    FinalHidden = rollout.FinalHidden.AsMemory(i * d, d).ToArray(),
                };
            }
            // The deadline covers scoring: past it, the output is the best of the candidates scored so far.
            int scored = _reward.ScoreWithin(inputs, rewards, ScoringBudget.Until(options.Deadline, requestClock, cancellationToken));
            deadline |= scored < n;
            var pool = scored == n ? rewards : rewards[..scored];
            int winner = PickWinner(pool, options, sample);
            yield return new CandidatesScored(sample, 0, pool.ToArray(), winner);

            var accepted = clock.Elapsed;
            var winnerInput = inputs[winner];
            double logProb = rollout.LogProb[winner];
            var estimate = new KlReport(KlEstimators.KlHatFromLogProbability(logProb, scored), KlMethod.BestOfNEstimate);
            yield return new TextAccepted(sample, winnerInput.Tokens, winnerInput.Text, estimate.Value);

            var candidates = options.ReturnCandidates
                ? inputs.Take(scored).Select((c, i) => new ScoredCandidate(i, c.Text, c.Tokens, rewards[i], rollout.LogProb[i], c.IsFinished)).ToArray()
                : [];
            var finish = deadline ? AlignFinish.Deadline : rollout.Stopped[winner] ? AlignFinish.Eos : AlignFinish.Length;
            yield return new SampleCompleted(new AlignedSample(sample, winnerInput.Text, winnerInput.Tokens, rewards[winner], logProb,
                estimate, new KlReport(BestOfNBound(scored), KlMethod.BestOfNBound), finish, rollout.TokensDecoded,
                new AlignTimings(prefill, accepted, clock.Elapsed, rollout.DecodeCalls) { ModelTime = rollout.DecodeTime }, candidates)
            {
                WinRateVsCandidates = scored > 1 ? WinRateAgainstOthers(pool, winner) : null,
            });
            if (deadline) yield break;
        }
    }

    /// <summary>log n - (n-1)/n [M7].</summary>
    private static double BestOfNBound(int n) => Math.Log(n) - (n - 1.0) / n;

    /// <summary>Highest reward; ties broken uniformly by the request's RNG ([M4]: uniform among the tied draws).</summary>
    private static int PickWinner(double[] rewards, BestOfNOptions options, int sample)
    {
        double best = rewards.Max();
        int ties = rewards.Count(r => r == best);
        int pick = ties == 1 ? 0 : (int)(Philox.Bits(new RngKey(options.Seed, options.RequestId, uint.MaxValue, (uint)sample), 0) % (uint)ties);
        for (int i = 0; i < rewards.Length; i++)
            if (rewards[i] == best && pick-- == 0) return i;
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
