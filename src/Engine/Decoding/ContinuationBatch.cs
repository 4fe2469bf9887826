using System.Runtime.InteropServices;
using Tilt.Engine.Models;
using Tilt.Engine.Text;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// K candidates that each hold a prefix in the engine's session, extended by up to <see cref="Settings.MaxTokens"/> tokens
/// sampled from the base model, driven one scheduler iteration at a time (the step function shared by plain generation,
/// best-of-n and blockwise CD). In an iteration a candidate whose newest token is pending is decoded (its row joins the
/// engine's one decode), then sampled (its row joins the engine's one sampling call).
/// <para>
/// Per candidate it records tokens, log p (T = 1, full vocabulary), the sampler's log-probability, whether a stop token
/// ended it, its text (detokenized incrementally, UTF-8 safe) and the hidden state after its last text token (the stop token
/// is not text). With <see cref="Settings.DecodeLastToken"/> a candidate cut by the token limit also has its last token
/// decoded, so its hidden state is current and its next-token logits are available (blockwise CD continues from them;
/// trained reward heads read that hidden state).
/// </para>
/// Noise for candidate i at response position t comes from RNG row Rows[i] and step StepOffset + t, so a candidate's text
/// depends neither on K, nor on which other candidates are alive, nor on what other requests share the batch.
/// </summary>
internal sealed partial class ContinuationBatch
{
    private readonly ModelInfo _info;
    private readonly ILanguageModel _model;
    private readonly int _vocab;
    private readonly int _hidden;
    private readonly Phase[] _phase;
    private readonly int[] _handle;       // [K] sampling handle (Sample phase) or decode row (Decode phases)
    private readonly bool[] _fromStart;   // [K] the next sample reads the start logits (no decode yet)
    private readonly int[] _topHandle;    // [K] top-N handle of the row sampled this iteration
    private float[] _startLogits;   // [prefixes, vocab] start rows (Settings.StartGroup; one shared row by default)
    private Settings _settings = null!;
    private int _remaining; // candidates not Done
    private StopMatcher? _textStop; // the matcher the candidates' StopTexts were made with

    public ContinuationBatch(ILanguageModel model, int capacity)
    {
        _model = model;
        _info = model.Info;
        _vocab = _info.VocabularySize;
        _hidden = _info.HiddenSize;
        _phase = new Phase[capacity];
        _handle = new int[capacity];
        _fromStart = new bool[capacity];
        _topHandle = new int[capacity];
        TokenLogProbs = new List<TokenLogProb>[capacity];
        _startLogits = new float[_vocab];
        Tokens = new List<int>[capacity];
        Decoders = new ITextDecoder[capacity];
        Texts = new StopText[capacity];
        for (int i = 0; i < capacity; i++)
        {
            Tokens[i] = [];
            Texts[i] = new StopText(null);
        }
        LogProb = new double[capacity];
        LastTokenLogProb = new float[capacity];
        LastDelta = new string[capacity];
        SamplerLogProb = new double[capacity];
        Stopped = new bool[capacity];
        StoppedByRequest = new bool[capacity];
        HiddenIsCurrent = new bool[capacity];
        FinalHidden = new float[capacity * _hidden];
        HasFinalLogits = new bool[capacity];
        Stepped = new bool[capacity];
        DecodedNow = new bool[capacity];
    }

    private enum Phase
    {
        Done,
        Sample,     // has logits (start or this iteration's decode row), wants its next token
        Decode,     // newest token pending; decode it, then sample
        DecodeOnly, // newest token pending at the limit; decode it for its state only
    }

    public int Candidates => _settings.Candidates;

    /// <summary>[K] generated tokens of each candidate in this run (stop token included).</summary>
    public List<int>[] Tokens { get; }

    /// <summary>[K] text of each candidate's tokens so far (incomplete UTF-8 held in its decoder), cut at a stop string.</summary>
    public StopText[] Texts { get; }

    /// <summary>[K] the candidates' streaming detokenizers.</summary>
    public ITextDecoder[] Decoders { get; }

    public double[] LogProb { get; }
    public float[] LastTokenLogProb { get; }

    /// <summary>[K] per-token log-probabilities of each candidate's tokens (with <see cref="Settings.Logprobs"/>), else empty.</summary>
    public List<TokenLogProb>[] TokenLogProbs { get; }

    /// <summary>
    /// [K] text completed by the candidate's newest token that may be streamed (without a tail that could still begin a stop
    /// string; see <see cref="UnstreamedText"/> for the rest at the end).
    /// </summary>
    public string[] LastDelta { get; }

    public double[] SamplerLogProb { get; }
    /// <summary>[K] true when a stop token (the model's or the request's) or a stop string ended the candidate.</summary>
    public bool[] Stopped { get; }

    /// <summary>[K] true when the request's stop strings or stop token ids (not the model's EOS) ended the candidate.</summary>
    public bool[] StoppedByRequest { get; }
    public bool[] HiddenIsCurrent { get; }

    /// <summary>[K, d] hidden state after the last decoded text token of each candidate.</summary>
    public float[] FinalHidden { get; }

    /// <summary>
    /// [K, vocab] next-token logits after the candidate's last token, where <see cref="HasFinalLogits"/>. Allocated when a
    /// candidate first keeps them (block strategies do; generation and best-of-n never): at K x 32,000 floats it is a
    /// large-object array of 2-8 MB that every request allocated (8.9 -> 1.1 MiB per K = 64 generation or best-of-n request on 15M).
    /// </summary>
    public float[] FinalLogits => _finalLogits ??= new float[_phase.Length * _vocab];

    private float[]? _finalLogits;

    public bool[] HasFinalLogits { get; }

    /// <summary>[K] true for candidates that received a token in the last <see cref="Advance"/>.</summary>
    public bool[] Stepped { get; }

    /// <summary>Candidates whose pending token the last decode consumed (their <see cref="FinalHidden"/> row is that prefix's).</summary>
    public bool[] DecodedNow { get; }

    /// <summary>True when every candidate is finished (and its last token decoded where asked).</summary>
    public bool IsFinished => _remaining == 0;

    /// <summary>Candidates still decoding.</summary>
    public int Live { get; private set; }

    public long TokensDecoded { get; private set; }
    public int DecodeCalls { get; private set; }

    /// <summary>Wall-clock time of the decode calls this run took part in (shared with the other rows of those batches).</summary>
    public TimeSpan ModelTime { get; private set; }

    /// <summary>
    /// Starts a run: every candidate already holds the same prefix, whose next-token logits are <paramref name="startLogits"/>
    /// [vocab] and hidden state <paramref name="startHidden"/> [d] (with <see cref="Settings.StartGroup"/>: one row of each per
    /// prefix, [prefixes, vocab] and [prefixes, d]).
    /// </summary>
    public void Start(Settings settings, ReadOnlySpan<float> startLogits, ReadOnlySpan<float> startHidden)
    {
        int n = settings.Candidates;
        if (n < 1 || n > _phase.Length)
            throw new ArgumentOutOfRangeException(nameof(settings), n, $"candidates must be 1..{_phase.Length}");
        _settings = settings;
        int rows = settings.StartGroup is { } groups ? groups.Take(n).Max() + 1 : 1;
        if (_startLogits.Length < rows * _vocab) _startLogits = new float[rows * _vocab];
        startLogits[..(rows * _vocab)].CopyTo(_startLogits);
        for (int i = 0; i < n; i++)
        {
            Tokens[i].Clear();
            (TokenLogProbs[i] ??= []).Clear();
            if (settings.TrackText && settings.Stop != _textStop) Texts[i] = new StopText(settings.Stop);
            Texts[i].Clear();
            if (settings.TrackText) Decoders[i] = _model.CreateTextDecoder();
            LogProb[i] = 0;
            SamplerLogProb[i] = 0;
            Stopped[i] = false;
            StoppedByRequest[i] = false;
            HiddenIsCurrent[i] = true;
            HasFinalLogits[i] = false;
            Stepped[i] = false;
            _phase[i] = Phase.Sample;
            _fromStart[i] = true;
            startHidden.Slice(Group(i) * _hidden, _hidden).CopyTo(FinalHidden.AsSpan(i * _hidden, _hidden));
        }
        if (settings.TrackText) _textStop = settings.Stop;
        TokensDecoded = 0;
        DecodeCalls = 0;
        ModelTime = TimeSpan.Zero;
        Live = n;
        _remaining = n;
    }

    /// <summary>Adds the pending tokens of live candidates to the iteration's decode.</summary>
    public void Plan(StepBatch batch)
    {
        if (IsFinished) return;
        bool any = false;
        for (int i = 0; i < _settings.Candidates; i++)
        {
            if (_phase[i] is not (Phase.Decode or Phase.DecodeOnly)) continue;
            _handle[i] = batch.AddDecode(_settings.Sequences[i], Tokens[i][^1]);
            any = true;
        }
        if (any)
        {
            DecodeCalls++;
        }
    }

    /// <summary>After the decode: records the hidden states (and, for candidates at the limit, the logits) of decoded rows.</summary>
    public void Collect(StepContext context)
    {
        Array.Clear(DecodedNow, 0, _settings.Candidates);
        if (IsFinished) return;
        var logits = context.Outputs.Logits;
        var hidden = context.Outputs.Hidden;
        bool decoded = false;
        for (int i = 0; i < _settings.Candidates; i++)
        {
            if (_phase[i] is not (Phase.Decode or Phase.DecodeOnly)) continue;
            int row = context.Batch.Row(_handle[i]);
            DecodedNow[i] = true;
            TokensDecoded++;
            decoded = true;
            hidden.Slice(row * _hidden, _hidden).CopyTo(FinalHidden.AsSpan(i * _hidden, _hidden));
            if (_phase[i] == Phase.DecodeOnly)
            {
                logits.Slice(row * _vocab, _vocab).CopyTo(FinalLogits.AsSpan(i * _vocab, _vocab));
                HasFinalLogits[i] = true;
                _phase[i] = Phase.Done;
                _remaining--;
                continue;
            }
            _phase[i] = Phase.Sample;
            _fromStart[i] = false;
        }
        if (decoded) ModelTime += context.LastDecode;
    }

    /// <summary>Queues every candidate that wants a token for sampling (from the start logits or its decoded row).</summary>
    public void Propose(StepContext context)
    {
        if (IsFinished) return;
        var logits = context.Outputs.Logits;
        for (int i = 0; i < _settings.Candidates; i++)
        {
            if (_phase[i] != Phase.Sample) continue;
            bool decoded = !_fromStart[i] && !_holding;
            int row = decoded ? context.Batch.Row(_handle[i]) : -1;
            var source = _fromStart[i] ? _startLogits.AsSpan(Group(i) * _vocab, _vocab)
                : _holding ? _held.AsSpan(i * _vocab, _vocab)
                : logits.Slice(row * _vocab, _vocab);
            if (_settings.TopLogprobs > 0) _topHandle[i] = context.Batch.AddTopLogProbs(source, _settings.TopLogprobs);
            // A row of this decode is sampled where llama.cpp left it; start and held logits are copied in.
            _handle[i] = decoded ? context.Batch.AddSampleRow(row, _settings.Sampling, Key(i)) : context.Batch.AddSample(source, _settings.Sampling, Key(i));
        }
        _holding = false;
    }

    private float[] _held = [];
    private bool _holding;

    /// <summary>
    /// Keeps the logits rows <see cref="Propose"/> will read from this iteration's decode, for a request that samples them in
    /// a later iteration (it waited for a value past this one; the next decode overwrites the rows).
    /// </summary>
    public void Hold(StepContext context)
    {
        if (IsFinished) return;
        if (_held.Length < _settings.Candidates * _vocab) _held = new float[_phase.Length * _vocab];
        var logits = context.Outputs.Logits;
        for (int i = 0; i < _settings.Candidates; i++)
        {
            if (_phase[i] != Phase.Sample || _fromStart[i]) continue;
            logits.Slice(context.Batch.Row(_handle[i]) * _vocab, _vocab).CopyTo(_held.AsSpan(i * _vocab, _vocab));
        }
        _holding = true;
    }

    /// <summary>Consumes the sampled tokens: appends, detokenizes, decides which candidates continue.</summary>
    public void Advance(StepBatch batch)
    {
        Array.Clear(Stepped, 0, _settings.Candidates);
        if (IsFinished) return;
        int live = 0;
        for (int i = 0; i < _settings.Candidates; i++)
        {
            if (_phase[i] != Phase.Sample) continue;
            int h = _handle[i], token = batch.SampledToken(h);
            float lp = batch.SampledBaseLogProb(h);
            Tokens[i].Add(token);
            LogProb[i] += lp;
            LastTokenLogProb[i] = lp;
            float samplerLp = batch.SampledSamplerLogProb(h);
            SamplerLogProb[i] += samplerLp;
            if (_settings.Logprobs || _settings.TopLogprobs > 0)
            {
                TokenLogProbs[i].Add(new TokenLogProb(token, lp)
                {
                    SamplerLogProb = samplerLp == lp ? double.NaN : samplerLp,
                    Top = _settings.TopLogprobs > 0 ? batch.TopLogProbs(_topHandle[i]) : [],
                });
            }
            Stepped[i] = true;
            bool eos = _info.IsStop(token), requestStop = false;
            var stop = _settings.Stop;
            if (_settings.TrackText)
            {
                int before = Texts[i].Length;
                string delta = Decoders[i].Push(token);
                requestStop = Texts[i].Append(delta);
                if (!eos && stop is not null && stop.IsStopToken(token))
                {
                    Texts[i].StopAtToken(before);
                    requestStop = true;
                }
                LastDelta[i] = Texts[i].TakeStreamable(delta);
            }
            else if (stop is not null && !eos)
            {
                requestStop = stop.IsStopToken(token) || (stop.HasStrings && StopInPreview(i, stop));
            }
            if (eos || requestStop)
            {
                // Like EOS: FinalHidden already holds the state after the token before the one that stopped.
                Stopped[i] = true;
                StoppedByRequest[i] = !eos;
                _phase[i] = Phase.Done;
                _remaining--;
            }
            else if (Tokens[i].Count >= _settings.MaxTokens)
            {
                if (_settings.DecodeLastToken)
                {
                    _phase[i] = Phase.DecodeOnly;
                }
                else
                {
                    HiddenIsCurrent[i] = false;
                    _phase[i] = Phase.Done;
                    _remaining--;
                }
            }
            else
            {
                _phase[i] = Phase.Decode;
                live++;
            }
        }
        Live = live;
    }
}
