using System.Diagnostics;
using Tilt.Engine.Rewards;
using Tilt.Engine.Text;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Token-wise controlled decoding [M14] as a step function. Each step takes the top-k candidate tokens of p(.|prefix),
/// decodes each as one token of a forked sequence in the engine's batch, scores every candidate's hidden state with the
/// value (trained heads batched with every other request's rows), and tilts p by exp(V/beta) over the candidate set in the
/// engine's one token-wise kernel call. The sampled candidate's sequence already holds the chosen token and its next
/// logits, so it becomes the prefix and the other forks are dropped. Stop-token candidates are not decoded; their value is
/// that of the finished text.
/// <para>
/// The tilt is renormalized over the k candidates (the documented approximation of [M14]); k = 0 means the whole
/// vocabulary. When k exceeds the sequences the request holds, candidates are decoded over several iterations and the
/// chosen token is decoded once more on the prefix. KL is the exact per-step drift KL(pi(.|s_t) || p(.|s_t)) summed [M15].
/// </para>
/// </summary>
internal sealed class TokenwiseRun : RequestRun
{
    private readonly TokenwiseOptions _options;
    private readonly IReward _reward;
    private readonly IValueFunction _value;
    private readonly int _k;          // candidates per step at most
    private readonly int _perDecode;  // candidate forks per iteration
    private readonly bool _chunked;
    private readonly float _beta;

    private enum State
    {
        NeedPrompt,
        StartStep,      // choose candidates from the prefix's logits, then decode them
        Decoding,       // candidate chunks in flight
        Tilting,        // values queued this iteration; tilt and sample in Propose
        Sampled,        // the token-wise row is queued; consume it in Advance
        PrefixDecode,   // (chunked) the chosen token is decoded on the prefix
        Scoring,        // the finished output's reward is being scored beside the scheduler
        Done,
    }

    private State _state = State.NeedPrompt;
    private int _sample, _current;
    private int _vocab, _d;
    private float[] _logits = [];           // [vocab] p's logits after the current prefix
    private float[] _hidden = [];           // [d] hidden state after the current prefix
    private int[] _candidateIds = [];       // [k] candidate tokens, most likely first
    private float[] _candidateHidden = [];  // [k, d]
    private int[] _candidateSequence = [];  // [k] sequence of each decoded candidate, -1 for stop tokens
    private int[] _candidateRow = [];       // [k] decode handle in this iteration's decode, -1 when not decoded now
    private double[] _values = [];          // [k]
    private float[] _valuesF = [];          // [k]
    private int _candidates, _nextToDecode;
    private (int, int) _tiltHandle;
    private int _topHandle;
    private int _prefixRow = -1;

    // The output in progress.
    private double _klSum;

    public TokenwiseRun(DecodingRequest request, int[] promptTokens, Stopwatch clock, CancellationToken cancellation, int vocab, int capacity)
        : base(request, promptTokens, clock, cancellation)
    {
        _options = (TokenwiseOptions)request.Options;
        _reward = request.Reward!;
        _value = request.Value ?? new PrefixRewardValue(_reward);
        _k = _options.Candidates == 0 ? vocab : Math.Min(_options.Candidates, vocab);
        if (capacity < 2)
            throw new RequestException($"token-wise CD needs at least 2 sequences (the prefix and a candidate); the engine holds {capacity}");
        _perDecode = Math.Min(_k, capacity - 1);
        _chunked = _k > _perDecode;
        _beta = (float)_options.Beta;
        _out = new OutputInProgress(Stops);
    }

    public override int SequencesNeeded => _perDecode + 1;

    private readonly OutputInProgress _out; // the output being written

    public override bool CanPark => true;

    /// <summary>
    /// Waiting for its values past this decode: keep the candidates' next-token logits (the chosen one's start the next step
    /// unless the step was chunked, which decodes the token again).
    /// </summary>
    public override void Park(StepContext context)
    {
        if (_chunked || _state != State.Tilting) return;
        if (_parked.Length < _k * _vocab) _parked = new float[_k * _vocab];
        for (int j = 0; j < _candidates; j++)
        {
            if (_candidateRow[j] < 0) continue;
            context.Outputs.Logits.Slice(context.Batch.Row(_candidateRow[j]) * _vocab, _vocab).CopyTo(_parked.AsSpan(j * _vocab, _vocab));
        }
        _isParked = true;
    }

    private float[] _parked = [];
    private bool _isParked;

    public override void Prepare(StepContext context)
    {
        if (_state != State.NeedPrompt) return;
        _vocab = context.Vocab;
        _d = context.Hidden;
        if (_candidateIds.Length == 0)
        {
            _logits = new float[_vocab];
            _hidden = new float[_d];
            _candidateIds = new int[_k];
            _candidateHidden = new float[_k * _d];
            _candidateSequence = new int[_k];
            _candidateRow = new int[_k];
            _values = new double[_k];
            _valuesF = new float[_k];
        }
        var start = Clock.Elapsed;
        var prompt = LoadPrompt(context, clear: _sample > 0, forks: 0);
        _out.Begin(context, Clock, start, prompt);
        _current = Sequences[0];
        prompt.Logits.CopyTo(_logits, 0);
        prompt.Hidden.CopyTo(_hidden, 0);
        _klSum = 0;
        _state = State.StartStep;
    }

    public override void Plan(StepContext context)
    {
        _prefixRow = -1;
        if (_state == State.PrefixDecode)
        {
            _prefixRow = context.Batch.AddDecode(_current, _out.Tokens[^1]);
            return;
        }
        if (_state == State.StartStep)
        {
            if (PastDeadline)
            {
                Finish(context, AlignFinish.Deadline);
                return;
            }
            BeginStep(context);
        }
        if (_state != State.Decoding) return;

        // The next chunk of candidates, each on its own fork of the prefix.
        Array.Fill(_candidateRow, -1, 0, _candidates);
        int decoded = 0, next = 0;
        while (_nextToDecode < _candidates && decoded < _perDecode)
        {
            int j = _nextToDecode++;
            if (IsStop(context, _candidateIds[j])) continue;
            int sequence = Sequences[next] == _current ? Sequences[++next] : Sequences[next];
            next++;
            context.Kv.Copy(_current, sequence);
            _candidateSequence[j] = sequence;
            _candidateRow[j] = context.Batch.AddDecode(sequence, _candidateIds[j]);
            decoded++;
        }
        if (decoded > 0) _out.DecodeCalls++;
    }

    public override void Score(StepContext context)
    {
        if (_prefixRow >= 0)
        {
            // The chosen token decoded on the prefix: its logits and state start the next step.
            int prefix = context.Batch.Row(_prefixRow);
            context.Outputs.Logits.Slice(prefix * _vocab, _vocab).CopyTo(_logits);
            context.Outputs.Hidden.Slice(prefix * _d, _d).CopyTo(_hidden);
            _out.Evaluated++;
            _out.DecodeCalls++;
            _out.ModelTime += context.LastDecode;
            _state = State.StartStep;
            return;
        }
        if (_state != State.Decoding) return;
        bool any = false;
        for (int j = 0; j < _candidates; j++)
        {
            if (_candidateRow[j] < 0) continue;
            int row = context.Batch.Row(_candidateRow[j]);
            any = true;
            _out.Evaluated++;
            context.Outputs.Hidden.Slice(row * _d, _d).CopyTo(_candidateHidden.AsSpan(j * _d, _d));
        }
        if (any) _out.ModelTime += context.LastDecode;
        if (_nextToDecode < _candidates) return;

        // Every candidate is decoded: queue their values.
        context.Batch.AddValues(this, _value, _value.NeedsInputs ? BuildInputs(context) : null, _candidateHidden.AsSpan(0, _candidates * _d), _candidates, _values);
        _state = State.Tilting;
    }

    public override void Propose(StepContext context)
    {
        if (_state != State.Tilting) return;
        int t = _out.Tokens.Count;
        for (int j = 0; j < _candidates; j++)
        {
            if (!double.IsFinite(_values[j]))
                throw new TiltException($"value {_value.Description} returned {_values[j]} for candidate token {_candidateIds[j]} at step {t}");
        }
        // The tilt is normalized per row, so subtracting the row's largest value changes no probability and keeps finite
        // values beyond the float range (1e300) representable in the kernel.
        Values.KernelValues.ShiftToFloat(_values.AsSpan(0, _candidates), _valuesF);
        _tiltHandle = context.Batch.AddTilted(_logits, _candidateIds.AsSpan(0, _candidates), _valuesF.AsSpan(0, _candidates), _beta,
            _options.Sampling, new RngKey(_options.Seed, _options.RequestId, (uint)t, (uint)_sample));
        if (_options.TopLogprobs > 0) _topHandle = context.Batch.AddTopLogProbs(_logits, _options.TopLogprobs);
        _state = State.Sampled;
    }

    public override void Advance(StepContext context)
    {
        if (_state != State.Sampled) return;
        bool parked = _isParked;
        _isParked = false;
        var (token, baseLp, tiltedLp, kl) = context.Batch.TiltResult(_tiltHandle);
        int chosen = Array.IndexOf(_candidateIds, token, 0, _candidates);
        if (chosen < 0) throw new TiltException($"the step kernel returned token {token}, which is not a candidate");
        int t = _out.Tokens.Count;
        _out.Tokens.Add(token);
        _out.LogProb += baseLp;
        _klSum += kl;
        TokenLogProb? entry = null;
        if (WantsLogprobs)
        {
            entry = new TokenLogProb(token, baseLp)
            {
                SamplerLogProb = tiltedLp == baseLp ? double.NaN : tiltedLp,
                Top = _options.TopLogprobs > 0 ? context.Batch.TopLogProbs(_topHandle) : [],
            };
            _out.TokenLogProbs.Add(entry);
        }
        int before = _out.Text.Length;
        _out.Text.Append(_out.Decoder.Push(token));
        bool eos = context.Info.IsStop(token);
        if (!eos && Stops is not null && Stops.IsStopToken(token)) _out.Text.StopAtToken(before);
        // The token that ends the output also streams what was held back for a possible stop string.
        bool last = eos || _out.Text.Stopped || _out.Tokens.Count >= _options.MaxTokens;
        if (last && !_out.Text.Stopped) _out.Text.Append(_out.Decoder.Flush());
        _out.Accepted(Clock);
        Emit(new CandidatesScored(_sample, t, _values.AsSpan(0, _candidates).ToArray(), chosen));
        Emit(new TextAccepted(_sample, [token], _out.Text.TakeStreamable(final: last), _klSum) { LogProb = baseLp, TokenLogProbs = entry is null ? null : [entry] });

        if (eos || _out.Text.Stopped)
        {
            Finish(context, eos ? AlignFinish.Eos : AlignFinish.Stop);
            return;
        }
        _candidateHidden.AsSpan(chosen * _d, _d).CopyTo(_hidden);
        if (_out.Tokens.Count >= _options.MaxTokens)
        {
            Finish(context, AlignFinish.Length);
            return;
        }
        if (_chunked)
        {
            // Later chunks reused the chosen fork's sequence: decode the token on the prefix itself.
            foreach (int s in Sequences) if (s != _current) context.Kv.Clear(s);
            _state = State.PrefixDecode;
            return;
        }
        if (parked) _parked.AsSpan(chosen * _vocab, _vocab).CopyTo(_logits);
        else context.Outputs.Logits.Slice(context.Batch.Row(_candidateRow[chosen]) * _vocab, _vocab).CopyTo(_logits);
        int keep = _candidateSequence[chosen];
        foreach (int s in Sequences) if (s != keep) context.Kv.Clear(s);
        _current = keep;
        _state = State.StartStep;
    }

    /// <summary>The model's stop tokens and the request's stop token ids end the text (such candidates are not decoded).</summary>
    private bool IsStop(StepContext context, int token) => context.Info.IsStop(token) || (Stops?.IsStopToken(token) ?? false);

    private void BeginStep(StepContext context)
    {
        _candidates = CandidateSet.TopK(_logits, _k, _candidateIds);
        if (_candidates == 0) throw new TiltException($"the model gives no possible next token after {_out.Tokens.Count} tokens (all logits are -inf)");
        for (int j = 0; j < _candidates; j++)
        {
            if (!IsStop(context, _candidateIds[j])) continue;
            // A stop candidate ends the text: its value reads the prefix's own state.
            _candidateSequence[j] = -1;
            _hidden.CopyTo(_candidateHidden.AsSpan(j * _d, _d));
        }
        _nextToDecode = 0;
        _state = State.Decoding;
    }

    private List<RewardInput> BuildInputs(StepContext context)
    {
        var list = new List<RewardInput>(_candidates);
        string prefix = _out.Text.ToString();
        for (int j = 0; j < _candidates; j++)
        {
            int id = _candidateIds[j];
            list.Add(new RewardInput
            {
                Prompt = Request.Prompt,
                PromptTokens = PromptTokens,
                Tokens = [.. _out.Tokens, id],
                Text = prefix + _out.Decoder.Preview([id]),
                IsFinished = IsStop(context, id),
            });
        }
        return list;
    }

    /// <summary>Ends the output: its reward is scored beside the scheduler, then <see cref="Report"/> emits it.</summary>
    private void Finish(StepContext context, AlignFinish finish)
    {
        if (!_out.Text.Stopped) _out.Text.Append(_out.Decoder.Flush());
        string text = _out.Text.ToString();
        int[] tokens = _out.Tokens.ToArray();
        // A deadline can end the output while text is still held back for a possible stop string.
        if (_out.Text.TakeStreamable(final: true) is { Length: > 0 } rest) Emit(new TextAccepted(_sample, [], rest, _klSum));
        var rewards = new double[1];
        var input = new RewardInput { Prompt = Request.Prompt, Text = text, Tokens = tokens, IsFinished = finish is AlignFinish.Eos or AlignFinish.Stop, FinalHidden = _hidden.ToArray() };
        _state = State.Scoring;
        ScoreAside(context, () => _reward.ScoreChecked([input], rewards), _ => Report(finish, text, tokens, rewards[0]));
    }

    private void Report(AlignFinish finish, string text, int[] tokens, double reward)
    {
        var rewards = new[] { reward };
        EmitResult(new AlignedSample(_sample, text, tokens, rewards[0], _out.LogProb, new KlReport(_klSum, KlMethod.StepDriftSum), null, finish,
            _out.Evaluated, _out.Timings(Clock), [])
        {
            CachedPromptTokens = _out.CachedPrompt,
            TokenLogProbs = WantsLogprobs ? _out.TokenLogProbs.ToArray() : null,
        });
        _state = NextOutput(ref _sample, finish == AlignFinish.Deadline) ? State.NeedPrompt : State.Done;
    }
}
