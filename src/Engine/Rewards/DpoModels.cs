using System.Globalization;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Loading;

namespace Tilt.Engine.Rewards;

/// <summary>
/// A DPO-trained policy and its reference model, loaded together, that score continuations by their per-token
/// log-ratio log pi_policy(y_t | x, y_&lt;t) - log pi_ref(y_t | x, y_&lt;t) (at temperature 1). The implicit reward of
/// DPO is r(x, y) = beta * the sum of those ratios over y [M23]. Both models must share the vocabulary.
/// Scoring is batched: per model and per distinct prompt, the prompt is prefilled once, its KV forked to every
/// candidate, and the candidates teacher-forced together, one decode of all of them per token position.
/// Thread-safe (one call at a time).
/// </summary>
public sealed class DpoModels : IDisposable
{
    /// <summary>The beta of <c>dpo:</c> when the spec gives none (DPO's common default).</summary>
    public const double DefaultBeta = 0.1;

    /// <summary>
    /// A token the policy gives probability 0 while the reference does not gets this log-ratio (nats) instead of
    /// -infinity, so values stay finite; exp(-1000) is 0 in double, so a tilt by it still excludes the token.
    /// </summary>
    public const double MinLogRatio = -1000.0;

    private readonly Lock _lock = new();
    private readonly Scorer _policy;
    private readonly Scorer _reference;

    private DpoModels(ILanguageModel policy, ILanguageModel reference, double beta)
    {
        Beta = beta;
        _policy = new Scorer(policy);
        _reference = new Scorer(reference);
    }

    public ILanguageModel Policy => _policy.Model;

    public ILanguageModel Reference => _reference.Model;

    /// <summary>The DPO temperature beta (> 0).</summary>
    public double Beta { get; }

    /// <summary>Canonical spec argument: POLICY,REF,beta=B with full paths.</summary>
    public string Argument => $"{Policy.Info.Path},{Reference.Info.Path},beta={Beta.ToString("R", CultureInfo.InvariantCulture)}";

    /// <summary>Loads both files and checks that they share a vocabulary.</summary>
    /// <exception cref="TiltException">A file cannot be loaded, beta is not positive, or the vocabularies differ (naming both files).</exception>
    public static DpoModels Load(string policyPath, string referencePath, double beta = DefaultBeta)
    {
        if (!double.IsFinite(beta) || beta <= 0)
            throw new TiltException($"dpo: beta must be a finite number > 0, got {beta.ToString(CultureInfo.InvariantCulture)}");
        ILanguageModel policy = LanguageModel.Load(policyPath);
        ILanguageModel? reference = null;
        try
        {
            reference = LanguageModel.Load(referencePath);
            CheckSameVocabulary(policy, reference);
            return new DpoModels(policy, reference, beta);
        }
        catch
        {
            reference?.Dispose();
            policy.Dispose();
            throw;
        }
    }

    /// <summary>Wraps two loaded models (owned from then on) after the vocabulary check.</summary>
    public static DpoModels Create(ILanguageModel policy, ILanguageModel reference, double beta = DefaultBeta)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(reference);
        if (!double.IsFinite(beta) || beta <= 0)
            throw new TiltException($"dpo: beta must be a finite number > 0, got {beta.ToString(CultureInfo.InvariantCulture)}");
        CheckSameVocabulary(policy, reference);
        return new DpoModels(policy, reference, beta);
    }

    /// <summary>
    /// Parses the argument of <c>dpo:</c>: POLICY,REF[,beta=B]; <paramref name="resolvePath"/> makes each path absolute
    /// (and applies a file policy).
    /// </summary>
    public static DpoModels Parse(string argument, Func<string, string> resolvePath)
    {
        ArgumentNullException.ThrowIfNull(argument);
        ArgumentNullException.ThrowIfNull(resolvePath);
        string[] parts = argument.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length is < 2 or > 3 || parts[0].Length == 0 || parts[1].Length == 0)
            throw new TiltException($"dpo:{argument}: write dpo:POLICY.gguf,REF.gguf[,beta=B]");
        double beta = DefaultBeta;
        if (parts.Length == 3)
        {
            const string Key = "beta=";
            if (!parts[2].StartsWith(Key, StringComparison.Ordinal)
                || !double.TryParse(parts[2][Key.Length..], NumberStyles.Float, CultureInfo.InvariantCulture, out beta))
                throw new TiltException($"dpo:{argument}: bad option '{parts[2]}' (the only option is beta=B, a number > 0)");
        }
        return Load(resolvePath(parts[0]), resolvePath(parts[1]), beta);
    }

    /// <summary>
    /// Per-token log-ratios: result[i][t] = log pi_policy(y_t) - log pi_ref(y_t) for continuation i after prompt i, each
    /// ratio clamped below at <see cref="MinLogRatio"/>; a token the reference gives probability 0 counts 0 (the base
    /// cannot propose it, so it changes no tilt).
    /// </summary>
    public double[][] LogRatios(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<IReadOnlyList<int>> continuations)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(continuations);
        if (prompts.Count != continuations.Count)
            throw new ArgumentException($"{prompts.Count} prompts but {continuations.Count} continuations", nameof(continuations));
        lock (_lock)
        {
            double[][] policy = _policy.TokenLogProbabilities(prompts, continuations);
            double[][] reference = _reference.TokenLogProbabilities(prompts, continuations);
            var ratios = new double[policy.Length][];
            for (int i = 0; i < policy.Length; i++)
            {
                ratios[i] = new double[policy[i].Length];
                for (int t = 0; t < policy[i].Length; t++)
                {
                    double lp = policy[i][t], lr = reference[i][t];
                    ratios[i][t] = double.IsNegativeInfinity(lr) ? 0.0 : Math.Max(MinLogRatio, lp - lr);
                }
            }
            return ratios;
        }
    }

    /// <summary>Prompt tokens for a prompt text, as the policy's tokenizer makes them (the vocabularies are shared).</summary>
    public int[] Tokenize(string prompt) => Policy.Tokenize(prompt);

    public void Dispose()
    {
        lock (_lock)
        {
            _policy.Dispose();
            _reference.Dispose();
        }
    }

    private static void CheckSameVocabulary(ILanguageModel policy, ILanguageModel reference)
    {
        var p = policy.Info;
        var r = reference.Info;
        string? problem = null;
        if (p.VocabularySize != r.VocabularySize) problem = $"vocabulary sizes {p.VocabularySize} and {r.VocabularySize}";
        else if (p.EosToken != r.EosToken || p.BosToken != r.BosToken) problem = "different BOS/EOS token ids";
        else
        {
            // The same ids must mean the same text: compare every token's text (cheap next to loading a model).
            for (int t = 0; t < p.VocabularySize && problem is null; t++)
            {
                if (policy.Detokenize([t]) != reference.Detokenize([t])) problem = $"token {t} reads differently";
            }
        }
        if (problem is not null)
            throw new TiltException($"dpo: the policy {p.Path} and the reference {r.Path} do not share a vocabulary ({problem}); DPO's log-ratio needs the same tokens in both");
    }

    /// <summary>One model's teacher-forced log-probabilities, with a session kept between calls and grown as needed.</summary>
    private sealed class Scorer(ILanguageModel model) : IDisposable
    {
        private IDecodingSession? _session;

        public ILanguageModel Model { get; } = model;

        public double[][] TokenLogProbabilities(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<IReadOnlyList<int>> continuations)
        {
            int n = prompts.Count;
            var result = new double[n][];
            for (int i = 0; i < n; i++) result[i] = new double[continuations[i].Count];

            // Candidates of the same prompt share one prefill; up to MaxSupportedSequences of them decode together.
            var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
            for (int i = 0; i < n; i++)
            {
                string key = string.Join(',', prompts[i]);
                if (!groups.TryGetValue(key, out var members)) groups[key] = members = [];
                members.Add(i);
            }
            foreach (var members in groups.Values)
            {
                for (int start = 0; start < members.Count; start += SessionOptions.MaxSupportedSequences)
                {
                    var chunk = members.GetRange(start, Math.Min(SessionOptions.MaxSupportedSequences, members.Count - start));
                    ScoreChunk(prompts[chunk[0]], chunk, continuations, result);
                }
            }
            return result;
        }

        private void ScoreChunk(IReadOnlyList<int> prompt, List<int> members, IReadOnlyList<IReadOnlyList<int>> continuations, double[][] result)
        {
            int longest = members.Max(i => continuations[i].Count);
            if (longest == 0) return;
            var session = SessionFor(members.Count, prompt.Count + longest + 1);
            int vocab = session.VocabularySize;
            try
            {
                session.Prefill(0, prompt.ToArray());
                ReadOnlySpan<float> first = session.Logits[..vocab];
                double lse = LogSumExp(first);
                for (int m = 0; m < members.Count; m++)
                {
                    var y = continuations[members[m]];
                    if (y.Count > 0) result[members[m]][0] = TokenLogProbability(first, y[0], lse);
                }
                for (int m = 1; m < members.Count; m++) session.CopySequence(0, m);

                var sequences = new List<int>(members.Count);
                var tokens = new List<int>(members.Count);
                for (int t = 0; t + 1 < longest; t++)
                {
                    // Feed token t to every candidate that has a token t + 1: its next row scores that token.
                    sequences.Clear();
                    tokens.Clear();
                    for (int m = 0; m < members.Count; m++)
                    {
                        var y = continuations[members[m]];
                        if (y.Count <= t + 1) continue;
                        sequences.Add(m);
                        tokens.Add(y[t]);
                    }
                    session.Step(sequences.ToArray(), tokens.ToArray());
                    for (int row = 0; row < sequences.Count; row++)
                    {
                        int member = members[sequences[row]];
                        ReadOnlySpan<float> logits = session.Logits.Slice(row * vocab, vocab);
                        result[member][t + 1] = TokenLogProbability(logits, continuations[member][t + 1], LogSumExp(logits));
                    }
                }
            }
            finally
            {
                for (int m = 0; m < members.Count; m++) session.RemoveSequence(m);
            }
        }

        private IDecodingSession SessionFor(int sequences, int length)
        {
            if (_session is { } s && s.MaxSequences >= sequences && s.MaxSequenceLength >= length) return s;
            int seqs = Math.Max(sequences, _session?.MaxSequences ?? 1);
            int len = Math.Max(length, _session?.MaxSequenceLength ?? 0);
            len = (int)Math.Min(int.MaxValue, Math.Max(64, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)len)));
            if (Model.Info.TrainedContextSize < int.MaxValue) len = Math.Max(length, Math.Min(len, Model.Info.TrainedContextSize));
            _session?.Dispose();
            _session = null;
            _session = Model.CreateSession(new SessionOptions { MaxSequences = seqs, MaxSequenceLength = len });
            return _session;
        }

        private static double TokenLogProbability(ReadOnlySpan<float> logits, int token, double lse)
        {
            if ((uint)token >= (uint)logits.Length)
                throw new TiltException($"dpo: token {token} is outside the vocabulary (0..{logits.Length - 1})");
            return logits[token] - lse;
        }

        /// <summary>log sum exp of a logits row in double, shifted by its maximum (entries of -inf contribute 0).</summary>
        private static double LogSumExp(ReadOnlySpan<float> logits)
        {
            double max = double.NegativeInfinity;
            foreach (float l in logits) if (l > max) max = l;
            if (double.IsNegativeInfinity(max)) return max;
            double sum = 0;
            foreach (float l in logits) sum += Math.Exp(l - max);
            return max + Math.Log(sum);
        }

        public void Dispose()
        {
            _session?.Dispose();
            _session = null;
            Model.Dispose();
        }
    }
}
