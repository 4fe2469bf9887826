using System.Diagnostics;
using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Sampling;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Strategies;

/// <summary>
/// Token-wise controlled decoding [M14]. Each step takes the top-k candidate tokens of p(.|prefix), feeds each
/// as one token of a forked sequence in ONE batched decode, scores every candidate's hidden state with the
/// value function, tilts p by exp(V/beta) over the candidate set and samples (one fused kernel call). The
/// sampled candidate's sequence already holds the chosen token and its next logits, so it becomes the prefix
/// and the others are dropped: no pass is wasted. Candidates that are stop tokens are not decoded; their value
/// is that of the finished text.
/// <para>
/// The tilt is renormalized over the k candidates: with k &lt; vocabulary size tokens outside the top-k of p are
/// never chosen (the documented approximation of [M14]); k = 0 means the whole vocabulary, exact for small models.
/// More than 255 candidates do not fit one llama.cpp context's sequences, so they are decoded in several batches
/// and the chosen token is decoded once more on the prefix (one extra single-token pass per step).
/// </para>
/// The KV cache is one shared pool (<see cref="KvLayout.Shared"/>): forking the prefix to k candidates only tags
/// cells, so a step costs one batched decode of k tokens whatever the prefix length.
/// KL is the exact per-step drift KL(pi(.|s_t) || p(.|s_t)) summed over the steps [M15].
/// </summary>
public sealed class TokenwiseDecoder
{
    /// <summary>Candidate sequences per decode: llama.cpp's 256 sequences less the prefix's own.</summary>
    internal const int MaxCandidatesPerDecode = SessionOptions.MaxSupportedSequences - 1;

    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly IValueFunction _value;
    private readonly IReward _reward;

    /// <param name="value">V(prefix + candidate) used for the tilt.</param>
    /// <param name="reward">The reward reported for each finished output.</param>
    public TokenwiseDecoder(ILanguageModel model, IStepKernels kernels, IValueFunction value, IReward reward)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        _value = value ?? throw new ArgumentNullException(nameof(value));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
    }

    public Task<IReadOnlyList<AlignedSample>> GenerateAsync(string prompt, TokenwiseOptions options, CancellationToken cancellationToken = default) =>
        AlignStream.CollectAsync(StreamAsync(prompt, options, cancellationToken));

    /// <summary>Streams each accepted token with the candidates' values and the running KL.</summary>
    public async IAsyncEnumerable<AlignEvent> StreamAsync(string prompt, TokenwiseOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        await Task.Yield();
        var requestClock = Stopwatch.StartNew();
        int[] promptTokens = _model.Tokenize(prompt);
        PromptLimits.Check(_model.Info, promptTokens.Length, options.MaxTokens);
        using var run = new TokenwiseRun(_model, _kernels, _value, prompt, promptTokens, options);

        for (int sample = 0; sample < options.Samples; sample++)
        {
            if (sample > 0 && AlignStream.PastDeadline(options, requestClock)) yield break;
            run.Start(sample);
            while (!run.Done)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (AlignStream.PastDeadline(options, requestClock))
                {
                    run.StopAtDeadline();
                    break;
                }
                var (scored, accepted) = run.Step();
                yield return scored;
                yield return accepted;
            }

            var result = run.Finish(_reward);
            yield return new SampleCompleted(result);
            if (result.Finish == AlignFinish.Deadline) yield break;
        }
    }

    /// <summary>The state of one request: session, buffers and the output in progress.</summary>
    private sealed class TokenwiseRun : IDisposable
    {
        private readonly ILanguageModel _model;
        private readonly IStepKernels _kernels;
        private readonly IValueFunction _value;
        private readonly ModelInfo _info;
        private readonly TokenwiseOptions _options;
        private readonly string _prompt;
        private readonly int[] _promptTokens;
        private readonly IDecodingSession _session;
        private readonly int _vocab, _d, _k, _perDecode;
        private readonly bool _chunked;

        private readonly float[] _logits;          // [vocab] p's logits after the current prefix
        private readonly float[] _hidden;          // [d] hidden state after the current prefix
        private readonly int[] _candidateIds;      // [k] candidate tokens, most likely first
        private readonly float[] _candidateHidden; // [k, d] hidden state after prefix + candidate
        private readonly float[] _candidateLogits; // [k, vocab] logits after prefix + candidate (when decoded in batches that overwrite each other)
        private readonly int[] _candidateSequence; // [k] session sequence of each decoded candidate, -1 for stop tokens
        private readonly int[] _candidateRow;      // [k] output row of each decoded candidate in its batch
        private readonly double[] _values;         // [k]
        private readonly float[] _valuesF;         // [k]
        private readonly int[] _batchSequences, _batchTokens, _batchCandidates; // [perDecode]
        private readonly int[] _token = new int[1];
        private readonly float[] _baseLp = new float[1], _tiltedLp = new float[1], _kl = new float[1];
        private readonly float[] _beta;
        private readonly SamplingParameters[] _parameters;
        private readonly RngKey[] _keys = new RngKey[1];

        // The output in progress.
        private int _sample, _current, _decodeCalls;
        private TimeSpan _modelTime;
        private long _evaluated;
        private readonly List<int> _tokens = [];
        private double _logProb, _klSum;
        private Stopwatch _clock = new();
        private TimeSpan _prefill;
        private TimeSpan? _firstAccepted;
        private Text.ITextDecoder _decoder = null!;
        private readonly System.Text.StringBuilder _text = new();
        private AlignFinish _finish;

        public TokenwiseRun(ILanguageModel model, IStepKernels kernels, IValueFunction value, string prompt, int[] promptTokens, TokenwiseOptions options)
        {
            _model = model;
            _kernels = kernels;
            _value = value;
            _info = model.Info;
            _options = options;
            _prompt = prompt;
            _promptTokens = promptTokens;
            _vocab = _info.VocabularySize;
            _d = _info.HiddenSize;
            _k = options.Candidates == 0 ? _vocab : Math.Min(options.Candidates, _vocab);
            _perDecode = Math.Min(_k, MaxCandidatesPerDecode);
            _chunked = _k > _perDecode;
            _session = model.CreateSession(new SessionOptions
            {
                MaxSequences = _perDecode + 1,
                MaxSequenceLength = promptTokens.Length + options.MaxTokens + 1,
                KvLayout = KvLayout.Shared,
                SharedCellsPerSequence = 2,
                Threads = options.Threads,
                KvCacheType = options.KvCacheType,
            });
            _logits = new float[_vocab];
            _hidden = new float[_d];
            _candidateIds = new int[_k];
            _candidateHidden = new float[_k * _d];
            _candidateLogits = _chunked ? new float[_k * _vocab] : [];
            _candidateSequence = new int[_k];
            _candidateRow = new int[_k];
            _values = new double[_k];
            _valuesF = new float[_k];
            _batchSequences = new int[_perDecode];
            _batchTokens = new int[_perDecode];
            _batchCandidates = new int[_perDecode];
            _beta = [(float)options.Beta];
            _parameters = [options.Sampling];
        }

        public bool Done { get; private set; }

        public void Start(int sample)
        {
            _sample = sample;
            _clock = Stopwatch.StartNew();
            for (int s = 0; s <= _perDecode; s++) _session.RemoveSequence(s);
            _current = 0;
            _session.Prefill(_current, _promptTokens);
            _session.Logits.CopyTo(_logits);
            _session.Hidden.CopyTo(_hidden);
            _prefill = _clock.Elapsed;
            _firstAccepted = null;
            _tokens.Clear();
            _text.Clear();
            _decoder = _model.CreateTextDecoder();
            _logProb = _klSum = 0;
            _evaluated = 0;
            _decodeCalls = 0;
            _modelTime = TimeSpan.Zero;
            _finish = AlignFinish.Length;
            Done = false;
        }

        public void StopAtDeadline()
        {
            _finish = AlignFinish.Deadline;
            Done = true;
        }

        public (CandidatesScored Scored, TextAccepted Accepted) Step()
        {
            int t = _tokens.Count;
            int c = CandidateSet.TopK(_logits, _k, _candidateIds);
            if (c == 0) throw new TiltException($"the model gives no possible next token after {t} tokens (all logits are -inf)");
            DecodeCandidates(c);

            var inputs = _value.NeedsInputs ? BuildInputs(c) : null;
            _value.Evaluate(inputs, _candidateHidden.AsSpan(0, c * _d), c, _values);
            for (int j = 0; j < c; j++)
            {
                if (!double.IsFinite(_values[j]))
                    throw new TiltException($"value {_value.Description} returned {_values[j]} for candidate token {_candidateIds[j]} at step {t}");
            }
            KernelValues.ShiftToFloat(_values.AsSpan(0, c), _valuesF.AsSpan(0, c));

            _keys[0] = new RngKey(_options.Seed, _options.RequestId, (uint)t, (uint)_sample);
            _kernels.TiltedStep(_logits, 1, _vocab, _candidateIds.AsSpan(0, c), c, _valuesF.AsSpan(0, c), _beta, _parameters, _keys,
                _token, _baseLp, _tiltedLp, _kl);
            int token = _token[0];
            int chosen = Array.IndexOf(_candidateIds, token, 0, c);
            if (chosen < 0) throw new TiltException($"the step kernel returned token {token}, which is not a candidate");

            _tokens.Add(token);
            _logProb += _baseLp[0];
            _klSum += _kl[0];
            string delta = _decoder.Push(token);
            _text.Append(delta);
            _firstAccepted ??= _clock.Elapsed;
            var scored = new CandidatesScored(_sample, t, _values.AsSpan(0, c).ToArray(), chosen);
            var accepted = new TextAccepted(_sample, [token], delta, _klSum);

            if (_info.IsStop(token))
            {
                _finish = AlignFinish.Eos;
                Done = true;
            }
            else
            {
                Advance(chosen);
                if (_tokens.Count >= _options.MaxTokens) Done = true;
            }
            return (scored, accepted);
        }

        public AlignedSample Finish(IReward reward)
        {
            _text.Append(_decoder.Flush());
            string text = _text.ToString();
            int[] tokens = _tokens.ToArray();
            var rewards = new double[1];
            reward.ScoreChecked([new RewardInput { Prompt = _prompt, Text = text, Tokens = tokens, IsFinished = _finish == AlignFinish.Eos, FinalHidden = _hidden.ToArray() }], rewards);
            return new AlignedSample(_sample, text, tokens, rewards[0], _logProb, new KlReport(_klSum, KlMethod.StepDriftSum), null, _finish,
                _evaluated, new AlignTimings(_prefill, _firstAccepted ?? _clock.Elapsed, _clock.Elapsed, _decodeCalls) { ModelTime = _modelTime }, []);
        }

        public void Dispose() => _session.Dispose();

        /// <summary>Decodes every non-stop candidate on its own fork of the prefix, at most 255 per decode call.</summary>
        private void DecodeCandidates(int c)
        {
            int pending = 0;
            for (int j = 0; j < c; j++)
            {
                if (_info.IsStop(_candidateIds[j]))
                {
                    // A stop candidate ends the text: its value reads the prefix's own state.
                    _candidateSequence[j] = -1;
                    _hidden.CopyTo(_candidateHidden.AsSpan(j * _d, _d));
                    continue;
                }
                _batchCandidates[pending++] = j;
                if (pending == _perDecode)
                {
                    DecodeBatch(pending);
                    pending = 0;
                }
            }
            if (pending > 0) DecodeBatch(pending);
        }

        private void DecodeBatch(int count)
        {
            int next = 0;
            for (int b = 0; b < count; b++)
            {
                if (next == _current) next++;
                int j = _batchCandidates[b];
                _candidateSequence[j] = next;
                _candidateRow[j] = b;
                _batchSequences[b] = next;
                _batchTokens[b] = _candidateIds[j];
                _session.CopySequence(_current, next);
                next++;
            }
            long started = Stopwatch.GetTimestamp();
            _session.Step(_batchSequences.AsSpan(0, count), _batchTokens.AsSpan(0, count));
            _modelTime += Stopwatch.GetElapsedTime(started);
            _evaluated += count;
            _decodeCalls++;
            for (int b = 0; b < count; b++)
            {
                int j = _batchCandidates[b];
                _session.Hidden.Slice(b * _d, _d).CopyTo(_candidateHidden.AsSpan(j * _d, _d));
                if (_chunked) _session.Logits.Slice(b * _vocab, _vocab).CopyTo(_candidateLogits.AsSpan(j * _vocab, _vocab));
            }
        }

        /// <summary>Makes prefix + chosen the new prefix and drops the other candidates.</summary>
        private void Advance(int chosen)
        {
            _candidateHidden.AsSpan(chosen * _d, _d).CopyTo(_hidden);
            if (_chunked)
            {
                // Later batches reused the chosen fork's sequence: decode the token on the prefix itself.
                _candidateLogits.AsSpan(chosen * _vocab, _vocab).CopyTo(_logits);
                for (int s = 0; s <= _perDecode; s++) if (s != _current) _session.RemoveSequence(s);
                long started = Stopwatch.GetTimestamp();
                _session.Step([_current], [_candidateIds[chosen]]);
                _modelTime += Stopwatch.GetElapsedTime(started);
                _evaluated++;
                _decodeCalls++;
                return;
            }
            _session.Logits.Slice(_candidateRow[chosen] * _vocab, _vocab).CopyTo(_logits);
            int keep = _candidateSequence[chosen];
            for (int s = 0; s <= _perDecode; s++) if (s != keep) _session.RemoveSequence(s);
            _current = keep;
        }

        private List<ValueInput> BuildInputs(int count)
        {
            var list = new List<ValueInput>(count);
            for (int j = 0; j < count; j++)
            {
                int[] extended = [.. _tokens, _candidateIds[j]];
                list.Add(new ValueInput
                {
                    Prompt = _prompt,
                    PromptTokens = _promptTokens,
                    Tokens = extended,
                    Text = _model.Detokenize(extended),
                    IsFinished = _info.IsStop(_candidateIds[j]),
                });
            }
            return list;
        }
    }
}
