using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Decoding;

namespace Tilt.Engine.Training;

/// <summary>
/// What CD-Q's Bellman targets [M17] need of each training prefix s, computed once: the top-k next tokens z of
/// p(.|s) with p renormalized over them, the hidden state of s + z for every z that does not end the text (one
/// batched decode of the k forks per prefix), and the fixed part of the target from the candidates that do end it
/// (a stop token: r of the finished prefix; the token limit reached: r of the cut text). Since none of this depends
/// on the head, every iteration's targets are then one head evaluation per candidate:
/// v(s) = Fixed(s) + sum_z p~(z|s) V_theta(s + z).
/// </summary>
internal sealed class BellmanExpansion
{
    /// <summary>Rollouts walked in lockstep (their prefixes are forked from them).</summary>
    internal const int RolloutsPerGroup = 16;

    private BellmanExpansion(int d, int[] rollouts, int[] rows, int[] candidateStart, float[] candidateHidden, double[] candidateProbability, double[] fixedPart) =>
        (Dimension, RolloutOf, RowOf, CandidateStart, CandidateHidden, CandidateProbability, FixedPart) =
        (d, rollouts, rows, candidateStart, candidateHidden, candidateProbability, fixedPart);

    public int Dimension { get; }

    /// <summary>[prefixes] rollout of each prefix.</summary>
    public int[] RolloutOf { get; }

    /// <summary>[prefixes] row of each prefix in its rollout's features.</summary>
    public int[] RowOf { get; }

    /// <summary>[prefixes + 1] offsets of each prefix's decoded (non-terminal) candidates.</summary>
    public int[] CandidateStart { get; }

    /// <summary>[candidates, d] hidden state after prefix + z.</summary>
    public float[] CandidateHidden { get; }

    /// <summary>[candidates] p~(z | prefix), renormalized over the top-k.</summary>
    public double[] CandidateProbability { get; }

    /// <summary>[prefixes] sum of p~(z) r over the candidates that end the text (the whole target for a prefix at the limit).</summary>
    public double[] FixedPart { get; }

    public int Count => RolloutOf.Length;

    /// <summary>Bellman targets of every prefix under a head.</summary>
    public double[] Targets(TrainedHead head)
    {
        var targets = new double[Count];
        var scratch = new float[head.ScratchSize];
        int d = Dimension;
        for (int j = 0; j < Count; j++)
        {
            double v = FixedPart[j];
            for (int c = CandidateStart[j]; c < CandidateStart[j + 1]; c++)
                v += CandidateProbability[c] * head.Predict(CandidateHidden.AsSpan(c * d, d), scratch);
            targets[j] = v;
        }
        return targets;
    }

    /// <summary>
    /// Picks up to <paramref name="maxPrefixes"/> prefixes of the given rollouts: rollouts in a seeded random order,
    /// up to <paramref name="perRollout"/> random recorded prefixes of each, so that the walk through the rollouts
    /// (one decode per token) stays short while the prefixes still come from many rollouts.
    /// </summary>
    public static (int[] Rollouts, int[] Rows) Select(RolloutSet set, IReadOnlyList<int> rollouts, int maxPrefixes, int perRollout, ulong seed)
    {
        var random = new Random(unchecked((int)(seed * 0x9E3779B97F4A7C15UL >> 33)) ^ 0x0c0d);
        var order = rollouts.ToArray();
        random.Shuffle(order);
        var pickedRollouts = new List<int>();
        var pickedRows = new List<int>();
        foreach (int r in order)
        {
            if (pickedRows.Count >= maxPrefixes) break;
            int count = set.Rollouts[r].Positions.Length;
            var rows = Enumerable.Range(0, count).ToArray();
            random.Shuffle(rows);
            int take = Math.Min(Math.Min(perRollout, count), maxPrefixes - pickedRows.Count);
            foreach (int row in rows.Take(take).Order())
            {
                pickedRollouts.Add(r);
                pickedRows.Add(row);
            }
        }
        return (pickedRollouts.ToArray(), pickedRows.ToArray());
    }

    /// <summary>
    /// Decodes the top-k candidates of every selected prefix. Rollouts are walked in groups of
    /// <see cref="RolloutsPerGroup"/>: each step advances every rollout of the group by one token and, in the same
    /// decode call, feeds the candidates of the prefixes selected at that length, each on a fork of its rollout.
    /// <para>
    /// The KV layout is per sequence, where a fork copies the prefix's cells, not the shared pool where a fork is
    /// free: in a shared pool every query scans the cells of every rollout of the group, and that cost grows with the
    /// group. Measured on stories260K (1000 prefixes, top-8, two busy cores): shared pool 5.1 s with one rollout at a
    /// time (one decode call per token), 13.0 s with groups of 16; per-sequence 3.6 s with groups of 16.
    /// </para>
    /// </summary>
    /// <param name="rollouts">[prefixes] rollout of each selected prefix.</param>
    /// <param name="rows">[prefixes] row of each selected prefix.</param>
    public static BellmanExpansion Build(ILanguageModel model, IReward reward, RolloutSet set, int[] rollouts, int[] rows, int topK,
        int? threads, KvCacheType kvCacheType, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var info = model.Info;
        if (set.ModelFingerprint != info.Fingerprint || set.HiddenSize != info.HiddenSize)
            throw new TiltException($"the rollouts were collected on model {set.ModelFingerprint}, not on {info.Fingerprint}");
        int d = info.HiddenSize, vocab = info.VocabularySize, count = rollouts.Length;
        int k = Math.Min(topK, vocab);
        int maxSequences = SessionOptions.MaxSupportedSequences;
        int group = Math.Min(RolloutsPerGroup, maxSequences - k);
        if (group < 1) throw new ArgumentOutOfRangeException(nameof(topK), topK, $"top-k must leave room for a rollout among {maxSequences} sequences");

        var perPrefix = new List<Candidate>[count];
        var fixedPart = new double[count];
        var pendingRewards = new List<(int Prefix, int Candidate, RewardInput Input)>();

        // Prefixes of each rollout, in order.
        var byRollout = new SortedDictionary<int, List<int>>();
        for (int j = 0; j < count; j++)
        {
            if (!byRollout.TryGetValue(rollouts[j], out var list)) byRollout[rollouts[j]] = list = [];
            list.Add(j);
        }
        foreach (var (r, list) in byRollout)
            list.Sort((a, b) => set.Rollouts[r].Positions[rows[a]].CompareTo(set.Rollouts[r].Positions[rows[b]]));
        var walk = byRollout.Keys.ToArray();
        int longestPrompt = set.PromptTokens.Max(t => t.Length);
        using var session = model.CreateSession(new SessionOptions
        {
            MaxSequences = Math.Min(maxSequences, group + Math.Max(k, group * k)),
            MaxSequenceLength = longestPrompt + set.MaxTokens + 1,
            KvLayout = KvLayout.PerSequence,
            Threads = threads,
            KvCacheType = kvCacheType,
        });
        var logits = new float[group * vocab];         // [group, vocab] next-token logits of each base sequence
        var ids = new int[k];
        var batchSequences = new List<int>();
        var batchTokens = new List<int>();
        var batchTargets = new List<(int Prefix, int Candidate)>(); // (-1, base) for base rows
        var freeIds = new Stack<int>();
        int expanded = 0;
        progress?.Report(new TrainingProgress("cd-q expansion", 0, count));

        for (int g0 = 0; g0 < walk.Length; g0 += group)
        {
            int members = Math.Min(group, walk.Length - g0);
            for (int s = 0; s < session.MaxSequences; s++) session.RemoveSequence(s);
            var member = new (Rollout Rollout, int Index, List<int> Prefixes, int Next, int Last)[members];
            for (int b = 0; b < members; b++)
            {
                int r = walk[g0 + b];
                var rollout = set.Rollouts[r];
                var prefixes = byRollout[r];
                int last = rollout.Positions[rows[prefixes[^1]]];
                member[b] = (rollout, r, prefixes, 0, last);
                session.Prefill(b, set.PromptTokens[rollout.PromptIndex]);
                session.Logits.CopyTo(logits.AsSpan(b * vocab, vocab));
            }

            for (int t = 0; ; t++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // Prefixes of length t to expand, and base sequences that must move on to t + 1.
                var expansions = new List<(int Base, int Prefix)>();
                var advancing = new List<int>();
                for (int b = 0; b < members; b++)
                {
                    ref var m = ref member[b];
                    while (m.Next < m.Prefixes.Count && m.Rollout.Positions[rows[m.Prefixes[m.Next]]] == t)
                    {
                        int prefix = m.Prefixes[m.Next++];
                        if (t >= set.MaxTokens)
                        {
                            fixedPart[prefix] = m.Rollout.Reward; // at the limit the text is final: the target is its reward
                            expanded++;
                        }
                        else
                        {
                            expansions.Add((b, prefix));
                        }
                    }
                    if (t < m.Last) advancing.Add(b);
                }
                if (expansions.Count == 0 && advancing.Count == 0) break;

                int e = 0;
                do
                {
                    batchSequences.Clear();
                    batchTokens.Clear();
                    batchTargets.Clear();
                    freeIds.Clear();
                    for (int s = session.MaxSequences - 1; s >= group; s--) freeIds.Push(s);
                    // As many expansions as the free sequences hold; the rest go into another decode first.
                    for (; e < expansions.Count; e++)
                    {
                        var (b, prefix) = expansions[e];
                        int c = CandidateSet.TopK(logits.AsSpan(b * vocab, vocab), k, ids);
                        int decoded = 0;
                        for (int i = 0; i < c; i++) if (!info.IsStop(ids[i])) decoded++;
                        if (decoded > freeIds.Count && batchTargets.Count > 0) break;
                        var candidates = perPrefix[prefix] = new(c);
                        var row = logits.AsSpan(b * vocab, vocab);
                        double max = row[ids[0]], z = 0;
                        for (int i = 0; i < c; i++) z += Math.Exp(row[ids[i]] - max);
                        var rollout = member[b].Rollout;
                        int[] prefixTokens = rollout.Tokens.AsSpan(0, t).ToArray();
                        for (int i = 0; i < c; i++)
                        {
                            int token = ids[i];
                            double p = Math.Exp(row[token] - max) / z;
                            if (info.IsStop(token))
                            {
                                candidates.Add(new Candidate(token, p, Terminal: true));
                                pendingRewards.Add((prefix, candidates.Count - 1, new RewardInput
                                {
                                    Prompt = set.Prompts[rollout.PromptIndex],
                                    Text = model.Detokenize(prefixTokens),
                                    Tokens = [.. prefixTokens, token],
                                    IsFinished = true,
                                    FinalHidden = set.Feature(member[b].Index, rows[prefix]).ToArray(),
                                }));
                                continue;
                            }
                            int sequence = freeIds.Pop();
                            session.CopySequence(b, sequence);
                            batchSequences.Add(sequence);
                            batchTokens.Add(token);
                            batchTargets.Add((prefix, candidates.Count));
                            // Reaching the limit ends the text: the candidate's value is the reward of the cut text.
                            candidates.Add(new Candidate(token, p, Terminal: t + 1 >= set.MaxTokens));
                        }
                        expanded++;
                    }
                    bool last = e >= expansions.Count;
                    if (last)
                    {
                        foreach (int b in advancing)
                        {
                            batchSequences.Add(b);
                            batchTokens.Add(member[b].Rollout.Tokens[t]);
                            batchTargets.Add((-1, b));
                        }
                    }
                    if (batchSequences.Count > 0)
                    {
                        session.Step(batchSequences.ToArray(), batchTokens.ToArray());
                        var hidden = session.Hidden;
                        for (int i = 0; i < batchTargets.Count; i++)
                        {
                            var (prefix, slot) = batchTargets[i];
                            if (prefix < 0)
                            {
                                session.Logits.Slice(i * vocab, vocab).CopyTo(logits.AsSpan(slot * vocab, vocab));
                                continue;
                            }
                            var candidate = perPrefix[prefix][slot];
                            candidate.Hidden = hidden.Slice(i * d, d).ToArray();
                            if (candidate.Terminal)
                            {
                                var rollout = set.Rollouts[rollouts[prefix]];
                                int[] tokens = [.. rollout.Tokens.AsSpan(0, t), candidate.Token];
                                pendingRewards.Add((prefix, slot, new RewardInput
                                {
                                    Prompt = set.Prompts[rollout.PromptIndex],
                                    Text = model.Detokenize(tokens),
                                    Tokens = tokens,
                                    IsFinished = false,
                                    FinalHidden = candidate.Hidden,
                                }));
                            }
                        }
                        foreach (int s in batchSequences) if (s >= group) session.RemoveSequence(s);
                    }
                }
                while (e < expansions.Count);
                progress?.Report(new TrainingProgress("cd-q expansion", expanded, count));
            }
        }

        // Rewards of the candidates that end the text, scored in one batch.
        if (pendingRewards.Count > 0)
        {
            var scores = new double[pendingRewards.Count];
            reward.ScoreChecked(pendingRewards.Select(x => x.Input).ToArray(), scores);
            for (int i = 0; i < scores.Length; i++)
            {
                var (prefix, slot, _) = pendingRewards[i];
                perPrefix[prefix][slot].Reward = scores[i];
            }
        }

        // Flatten: terminal candidates fold into the fixed part; the others keep their hidden states.
        var start = new int[count + 1];
        var hiddenRows = new List<float[]>();
        var probabilities = new List<double>();
        for (int j = 0; j < count; j++)
        {
            start[j] = probabilities.Count;
            if (perPrefix[j] is not { } candidates) continue;
            foreach (var c in candidates)
            {
                if (c.Terminal)
                {
                    fixedPart[j] += c.P * c.Reward;
                    continue;
                }
                hiddenRows.Add(c.Hidden!);
                probabilities.Add(c.P);
            }
        }
        start[count] = probabilities.Count;
        var flat = new float[hiddenRows.Count * d];
        for (int i = 0; i < hiddenRows.Count; i++) hiddenRows[i].CopyTo(flat, i * d);
        return new BellmanExpansion(d, rollouts, rows, start, flat, probabilities.ToArray(), fixedPart);
    }

    /// <summary>One candidate next token of a prefix.</summary>
    private sealed record Candidate(int Token, double P, bool Terminal)
    {
        /// <summary>r of the text it ends (terminal candidates).</summary>
        public double Reward { get; set; }

        /// <summary>[d] hidden state after prefix + token (decoded candidates).</summary>
        public float[]? Hidden { get; set; }
    }
}
