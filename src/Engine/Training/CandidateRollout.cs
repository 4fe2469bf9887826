using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Engine.Training;

/// <summary>
/// The batched decoding loop shared by base sampling, best-of-n and blockwise CD: K candidates that each
/// already hold a prefix in the session are extended by up to <see cref="Settings.MaxTokens"/> tokens
/// sampled from the base model, one decode call and one sampling call per step over all live candidates.
/// <para>
/// Per candidate it records tokens, log p (T = 1, full vocabulary), the sampler's log-probability,
/// whether a stop token ended it, and the hidden state after its last text token (the stop token is
/// not text). With <see cref="Settings.DecodeLastToken"/> a candidate cut by the token limit also has its
/// last token decoded, so that its hidden state is current and its next-token logits are available
/// (blockwise CD continues from them; trained reward heads read that hidden state).
/// </para>
/// Noise for candidate i at response position t comes from RNG row Rows[i] and step StepOffset + t,
/// so a candidate's text does not depend on K or on which other candidates are alive.
/// </summary>
internal sealed class CandidateRollout
{
    private readonly IDecodingSession _session;
    private readonly IStepKernels _kernels;
    private readonly ModelInfo _info;
    private readonly int _vocab;
    private readonly int _hidden;

    // Scratch reused across runs; sized for the session's MaxSequences.
    private readonly SamplingParameters[] _parameters;
    private readonly RngKey[] _keys;
    private readonly int[] _sampled;
    private readonly float[] _baseLogProb;
    private readonly float[] _samplerLogProb;
    private readonly int[] _live;        // candidate indices to sample this step, in logits-row order
    private readonly int[] _nextLive;
    private readonly int[] _batchSequences;
    private readonly int[] _batchTokens;
    private readonly int[] _decodeOnly;  // candidates whose last token is decoded without sampling after it
    private readonly int[] _stepCandidates;
    private int _stepCount;

    public CandidateRollout(IDecodingSession session, IStepKernels kernels, ModelInfo info)
    {
        _session = session;
        _kernels = kernels;
        _info = info;
        _vocab = info.VocabularySize;
        _hidden = info.HiddenSize;
        int k = session.MaxSequences;
        _parameters = new SamplingParameters[k];
        _keys = new RngKey[k];
        _sampled = new int[k];
        _baseLogProb = new float[k];
        _samplerLogProb = new float[k];
        _live = new int[k];
        _nextLive = new int[k];
        _batchSequences = new int[k];
        _batchTokens = new int[k];
        _decodeOnly = new int[k];
        _stepCandidates = new int[k];
        Tokens = new List<int>[k];
        for (int i = 0; i < k; i++) Tokens[i] = [];
        LogProb = new double[k];
        LastTokenLogProb = new float[k];
        SamplerLogProb = new double[k];
        Stopped = new bool[k];
        HiddenIsCurrent = new bool[k];
        FinalHidden = new float[k * _hidden];
        FinalLogits = new float[k * _vocab];
        HasFinalLogits = new bool[k];
    }

    /// <summary>What one run does.</summary>
    public sealed record Settings
    {
        /// <summary>Candidates in this run (&lt;= the session's MaxSequences).</summary>
        public required int Candidates { get; init; }

        /// <summary>[Candidates] session sequence of each candidate.</summary>
        public required int[] Sequences { get; init; }

        /// <summary>[Candidates] RNG row of each candidate.</summary>
        public required uint[] Rows { get; init; }

        public required int MaxTokens { get; init; }
        public required SamplingParameters Sampling { get; init; }
        public required ulong Seed { get; init; }
        public required uint Request { get; init; }

        /// <summary>Response position of the first token of this run (RNG step of t = 0).</summary>
        public int StepOffset { get; init; }

        public bool DecodeLastToken { get; init; }
    }

    /// <summary>[K] generated tokens of each candidate in the last run (stop token included).</summary>
    public List<int>[] Tokens { get; }

    /// <summary>[K] sum of log p over the candidate's tokens (stop token included).</summary>
    public double[] LogProb { get; }

    /// <summary>[K] log p of each candidate's newest token.</summary>
    public float[] LastTokenLogProb { get; }

    /// <summary>[K] sum of the sampler's log-probabilities.</summary>
    public double[] SamplerLogProb { get; }

    /// <summary>[K] true when a stop token ended the candidate.</summary>
    public bool[] Stopped { get; }

    /// <summary>
    /// [K] true when <see cref="FinalHidden"/> is the state after the candidate's last text token; false when
    /// the token limit cut it and its last token was not decoded (the state is one token behind).
    /// </summary>
    public bool[] HiddenIsCurrent { get; }

    /// <summary>[K, d] hidden state after the last decoded text token of each candidate.</summary>
    public float[] FinalHidden { get; }

    /// <summary>[K, vocab] next-token logits after the candidate's last token, where <see cref="HasFinalLogits"/>.</summary>
    public float[] FinalLogits { get; }

    /// <summary>[K] true for candidates cut by the limit whose last token was decoded.</summary>
    public bool[] HasFinalLogits { get; }

    /// <summary>Candidates that received a token in the step just yielded (their newest token is Tokens[c][^1]).</summary>
    public ReadOnlySpan<int> StepCandidates => _stepCandidates.AsSpan(0, _stepCount);

    /// <summary>Tokens the model decoded in the last run (sum over decode calls of the batch size).</summary>
    public long TokensDecoded { get; private set; }

    /// <summary>Time inside the session's decode calls in the last run.</summary>
    public TimeSpan DecodeTime { get; private set; }

    /// <summary>Decode calls in the last run.</summary>
    public int DecodeCalls { get; private set; }

    /// <summary>
    /// Runs the candidates. <paramref name="startLogits"/> [Candidates, vocab] and <paramref name="startHidden"/>
    /// [Candidates, d] are each candidate's state after its prefix. Yields the number of live candidates after
    /// each sampling step, so callers can stream progress and check cancellation or deadlines between steps
    /// (stopping the enumeration leaves the session consistent: every sequence holds exactly its decoded tokens).
    /// </summary>
    public IEnumerable<int> Run(Settings settings, ReadOnlyMemory<float> startLogits, ReadOnlyMemory<float> startHidden)
    {
        int n = settings.Candidates;
        if (n < 1 || n > _session.MaxSequences)
            throw new ArgumentOutOfRangeException(nameof(settings), n, $"candidates must be 1..{_session.MaxSequences}");
        for (int i = 0; i < n; i++)
        {
            Tokens[i].Clear();
            LogProb[i] = 0;
            SamplerLogProb[i] = 0;
            Stopped[i] = false;
            HiddenIsCurrent[i] = true;
            HasFinalLogits[i] = false;
            _live[i] = i;
            _parameters[i] = settings.Sampling;
        }
        startHidden.Span[..(n * _hidden)].CopyTo(FinalHidden);
        TokensDecoded = 0;
        DecodeCalls = 0;
        DecodeTime = TimeSpan.Zero;
        int liveCount = n;

        for (int t = 0; liveCount > 0; t++)
        {
            ReadOnlySpan<float> logits = t == 0 ? startLogits.Span[..(n * _vocab)] : _session.Logits[..(liveCount * _vocab)];
            for (int r = 0; r < liveCount; r++)
                _keys[r] = new RngKey(settings.Seed, settings.Request, (uint)(settings.StepOffset + t), settings.Rows[_live[r]]);
            _kernels.SampleBase(logits, liveCount, _vocab, _parameters.AsSpan(0, liveCount), _keys.AsSpan(0, liveCount),
                _sampled, _baseLogProb, _samplerLogProb);

            _live.AsSpan(0, liveCount).CopyTo(_stepCandidates);
            _stepCount = liveCount;
            int continuing = 0, decodeOnly = 0;
            for (int r = 0; r < liveCount; r++)
            {
                int c = _live[r], token = _sampled[r];
                Tokens[c].Add(token);
                LogProb[c] += _baseLogProb[r];
                LastTokenLogProb[c] = _baseLogProb[r];
                SamplerLogProb[c] += _samplerLogProb[r];
                if (_info.IsStop(token))
                {
                    Stopped[c] = true; // FinalHidden already holds the state after the last text token
                }
                else if (Tokens[c].Count >= settings.MaxTokens)
                {
                    if (settings.DecodeLastToken) _decodeOnly[decodeOnly++] = c;
                    else HiddenIsCurrent[c] = false;
                }
                else
                {
                    _nextLive[continuing++] = c;
                }
            }

            // One decode: continuing candidates first (their logits rows feed the next sampling call in
            // order), then the candidates whose last token is decoded only for its state.
            int batch = 0;
            for (int j = 0; j < continuing; j++, batch++)
            {
                int c = _nextLive[j];
                _batchSequences[batch] = settings.Sequences[c];
                _batchTokens[batch] = Tokens[c][^1];
            }
            for (int j = 0; j < decodeOnly; j++, batch++)
            {
                int c = _decodeOnly[j];
                _batchSequences[batch] = settings.Sequences[c];
                _batchTokens[batch] = Tokens[c][^1];
            }
            if (batch > 0)
            {
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                _session.Step(_batchSequences.AsSpan(0, batch), _batchTokens.AsSpan(0, batch));
                DecodeTime += System.Diagnostics.Stopwatch.GetElapsedTime(started);
                TokensDecoded += batch;
                DecodeCalls++;
                var hidden = _session.Hidden;
                for (int j = 0; j < continuing; j++)
                    hidden.Slice(j * _hidden, _hidden).CopyTo(FinalHidden.AsSpan(_nextLive[j] * _hidden, _hidden));
                for (int j = 0; j < decodeOnly; j++)
                {
                    int c = _decodeOnly[j], row = continuing + j;
                    hidden.Slice(row * _hidden, _hidden).CopyTo(FinalHidden.AsSpan(c * _hidden, _hidden));
                    _session.Logits.Slice(row * _vocab, _vocab).CopyTo(FinalLogits.AsSpan(c * _vocab, _vocab));
                    HasFinalLogits[c] = true;
                }
            }

            _nextLive.AsSpan(0, continuing).CopyTo(_live);
            liveCount = continuing;
            yield return liveCount;
        }
    }
}
