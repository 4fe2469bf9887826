using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Sampling;
using Tilt.Engine.Statistics;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Strategies;

/// <summary>
/// Blockwise controlled decoding [M18] ("best-of-n++"): from the current prefix, K candidate blocks of M tokens
/// are drawn from p in parallel (one decode call per token over all K), each block is scored by the value of
/// its last hidden state (or by the reward when it finished the text), the best block is kept (or one is
/// sampled ∝ exp(V/beta)), streamed to the caller, and its KV cache becomes every sequence's prefix. The user
/// waits for one block at a time; quality approaches best-of-n as blocks accumulate. With M at least the whole
/// response and argmax selection this is exactly best-of-K with the value as reward [M18].
/// KL per block is bounded by log K - (K-1)/K and estimated by KLhat with eps = p(block | prefix) [M19].
/// </summary>
public sealed class BlockwiseDecoder
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly IValueFunction _value;
    private readonly IReward _reward;

    /// <param name="value">V(prefix + block) used to pick blocks that do not finish the text.</param>
    /// <param name="reward">Scores blocks that finish the text, and every returned output.</param>
    public BlockwiseDecoder(ILanguageModel model, IStepKernels kernels, IValueFunction value, IReward reward)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        _value = value ?? throw new ArgumentNullException(nameof(value));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
    }

    public Task<IReadOnlyList<AlignedSample>> GenerateAsync(string prompt, BlockwiseOptions options, CancellationToken cancellationToken = default) =>
        AlignStream.CollectAsync(StreamAsync(prompt, options, cancellationToken));

    /// <summary>Streams every accepted block with the candidates' scores and the running KL estimate.</summary>
    public async IAsyncEnumerable<AlignEvent> StreamAsync(string prompt, BlockwiseOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        await Task.Yield();
        var requestClock = Stopwatch.StartNew();
        var info = _model.Info;
        int[] promptTokens = _model.Tokenize(prompt);
        PromptLimits.Check(info, promptTokens.Length, options.MaxTokens);
        int k = options.K, vocab = info.VocabularySize, d = info.HiddenSize;

        // One shared KV pool: moving the winner to every sequence only re-tags cells, and each candidate holds
        // at most one block of private cells.
        using var session = _model.CreateSession(new SessionOptions
        {
            MaxSequences = k,
            MaxSequenceLength = promptTokens.Length + options.MaxTokens + 1,
            KvLayout = KvLayout.Shared,
            SharedCellsPerSequence = Math.Min(options.BlockSize, options.MaxTokens) + 1,
            Threads = options.Threads,
            KvCacheType = options.KvCacheType,
        });
        var rollout = new CandidateRollout(session, _kernels, info);
        int[] sequences = Enumerable.Range(0, k).ToArray();
        var startLogits = new float[k * vocab]; // [K, vocab] every candidate starts from the prefix's logits
        var startHidden = new float[k * d];     // [K, d]
        var scores = new double[k];
        var rows = new uint[k];

        for (int sample = 0; sample < options.Samples; sample++)
        {
            if (sample > 0 && AlignStream.PastDeadline(options, requestClock)) yield break;
            var clock = Stopwatch.StartNew();
            for (int s = 0; s < k; s++) session.RemoveSequence(s);
            var (prefixLogits, prefixHidden) = PromptFork.PrefillAndFork(session, promptTokens, 1);
            var prefill = clock.Elapsed;
            TimeSpan? firstBlock = null;
            for (int i = 0; i < k; i++) rows[i] = (uint)(sample * k + i);

            var tokens = new List<int>(options.MaxTokens);
            var decoder = _model.CreateTextDecoder();
            var text = new System.Text.StringBuilder();
            var blockLogProbs = new List<double>();
            double logProb = 0;
            long evaluated = 0;
            int decodeCalls = 0, block = 0;
            var modelTime = TimeSpan.Zero;
            var finish = AlignFinish.Length;
            bool stopped = false;

            while (!stopped && tokens.Count < options.MaxTokens)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (AlignStream.PastDeadline(options, requestClock))
                {
                    finish = AlignFinish.Deadline;
                    break;
                }
                // Fork the prefix (sequence 0 holds it) to every candidate and replicate its state.
                for (int i = 1; i < k; i++) session.CopySequence(0, i);
                for (int i = 0; i < k; i++)
                {
                    prefixLogits.CopyTo(startLogits.AsSpan(i * vocab, vocab));
                    prefixHidden.CopyTo(startHidden.AsSpan(i * d, d));
                }
                int m = Math.Min(options.BlockSize, options.MaxTokens - tokens.Count);
                var settings = new CandidateRollout.Settings
                {
                    Candidates = k,
                    Sequences = sequences,
                    Rows = rows,
                    MaxTokens = m,
                    Sampling = options.Sampling,
                    Seed = options.Seed,
                    Request = options.RequestId,
                    StepOffset = tokens.Count,
                    // The winner's next block starts from its logits after its last token.
                    DecodeLastToken = true,
                };
                foreach (int _ in rollout.Run(settings, startLogits, startHidden)) cancellationToken.ThrowIfCancellationRequested();
                evaluated += rollout.TokensDecoded;
                decodeCalls += rollout.DecodeCalls;
                modelTime += rollout.DecodeTime;

                ScoreBlocks(prompt, promptTokens, tokens, rollout, k, d, scores);
                int winner = SelectBlock(scores, options, sample, block);
                var blockTokens = rollout.Tokens[winner];
                tokens.AddRange(blockTokens);
                logProb += rollout.LogProb[winner];
                blockLogProbs.Add(rollout.LogProb[winner]);
                string delta = string.Concat(blockTokens.Select(decoder.Push));
                text.Append(delta);
                firstBlock ??= clock.Elapsed;
                yield return new CandidatesScored(sample, block, scores.ToArray(), winner);
                yield return new TextAccepted(sample, blockTokens.ToArray(), delta, BlockwiseKl.Estimate(CollectionsMarshal.AsSpan(blockLogProbs), k));
                block++;

                if (rollout.Stopped[winner])
                {
                    stopped = true;
                    finish = AlignFinish.Eos;
                    break;
                }
                // The winner becomes the prefix: move its cache to sequence 0 and keep its next-token state.
                session.CopySequence(winner, 0);
                for (int i = 1; i < k; i++) session.RemoveSequence(i);
                rollout.FinalLogits.AsSpan(winner * vocab, vocab).CopyTo(prefixLogits);
                rollout.FinalHidden.AsSpan(winner * d, d).CopyTo(prefixHidden);
            }

            text.Append(decoder.Flush());
            string finalText = text.ToString();
            int[] finalTokens = tokens.ToArray();
            var reward = new double[1];
            _reward.ScoreChecked([new RewardInput { Prompt = prompt, Text = finalText, Tokens = finalTokens, IsFinished = stopped, FinalHidden = prefixHidden.ToArray() }], reward);
            var perBlock = Enumerable.Repeat(k, block).ToArray();
            yield return new SampleCompleted(new AlignedSample(sample, finalText, finalTokens, reward[0], logProb,
                new KlReport(BlockwiseKl.Estimate(CollectionsMarshal.AsSpan(blockLogProbs), k), KlMethod.BlockEstimate),
                new KlReport(BlockwiseKl.Bound(perBlock), KlMethod.BlockBound), finish, evaluated,
                new AlignTimings(prefill, firstBlock ?? clock.Elapsed, clock.Elapsed, decodeCalls) { ModelTime = modelTime }, []));
            if (finish == AlignFinish.Deadline) yield break;
        }
    }

    /// <summary>
    /// Value of every candidate block: the reward of the finished text for blocks that ended with a stop
    /// token, V(prefix + block) from the block's last hidden state otherwise.
    /// </summary>
    private void ScoreBlocks(string prompt, int[] promptTokens, List<int> prefix, CandidateRollout rollout, int k, int d, double[] scores)
    {
        var inputs = new ValueInput[k];
        for (int i = 0; i < k; i++)
        {
            int[] tokens = [.. prefix, .. rollout.Tokens[i]];
            inputs[i] = new ValueInput
            {
                Prompt = prompt,
                PromptTokens = promptTokens,
                Tokens = tokens,
                Text = _model.Detokenize(tokens),
                IsFinished = rollout.Stopped[i],
            };
        }
        _value.Evaluate(_value.NeedsInputs ? inputs : null, rollout.FinalHidden.AsSpan(0, k * d), k, scores);

        var finished = Enumerable.Range(0, k).Where(i => rollout.Stopped[i]).ToArray();
        if (finished.Length > 0)
        {
            var candidates = finished.Select(i => new RewardInput
            {
                Prompt = prompt,
                Text = inputs[i].Text,
                Tokens = inputs[i].Tokens,
                IsFinished = true,
                FinalHidden = rollout.FinalHidden.AsMemory(i * d, d).ToArray(),
            }).ToArray();
            var rewards = new double[finished.Length];
            _reward.ScoreChecked(candidates, rewards);
            for (int j = 0; j < finished.Length; j++) scores[finished[j]] = rewards[j];
        }
        for (int i = 0; i < k; i++)
            if (!double.IsFinite(scores[i]))
                throw new TiltException($"value {_value.Description} returned {scores[i]} for candidate block {i}");
    }

    /// <summary>
    /// Argmax with ties broken uniformly at random ([M4]: uniform among tied draws, so one block of M >= length is
    /// exactly best-of-K), or a draw ∝ exp(V/beta); both from the step kernels' block selection with noise keyed by
    /// the block, so the choice is reproducible.
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
