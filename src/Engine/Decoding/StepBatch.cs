using Tilt.Engine.Rewards;
using Tilt.Engine.Heads;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// The rows of one scheduler iteration over every admitted request: the tokens to decode (one llama_decode), the
/// value evaluations on the hidden states that come back, and the rows to sample (one <see cref="IStepKernels.SampleBase"/>
/// call for every base-sampled row, one <see cref="IStepKernels.TiltedStep"/> call per candidate-set size for token-wise
/// rows). Per-row parameters live in arrays beside the rows (vLLM's SamplingMetadata), never as branches in a kernel.
/// Not thread-safe: the scheduler's loop thread owns it.
/// </summary>
internal sealed partial class StepBatch
{
    private readonly int _vocab;
    private readonly int _hidden;

    // Decode entries: [decodes] logical sequence and token, in the order the runs added them (an entry's handle is its
    // index). Order() sorts them by physical sequence id for llama.cpp; _rowOf maps a handle to its output row.
    private int[] _sequences;
    private int[] _tokens;
    private int[] _orderedSequences;
    private int[] _orderedTokens;
    private int[] _rowOf;

    // Base sampling: [samples, vocab] gathered logits and per-row parameters, keys and results. A sample queued as a row of
    // this iteration's decode (_sampleRow >= 0) is not copied: when the samples are exactly the decode's rows, the kernels
    // read llama.cpp's logits buffer in place (parameters and keys laid out by row, _slotOf maps a handle to its row);
    // otherwise those rows are gathered into _sampleLogits at Sample.
    private int[] _sampleRow;
    private int[] _slotOf;
    private SamplingParameters[] _rowParameters;
    private RngKey[] _rowKeys;
    private float[] _sampleLogits;
    private SamplingParameters[] _sampleParameters;
    private RngKey[] _sampleKeys;
    private int[] _sampledTokens;
    private float[] _sampledBaseLogProb;
    private float[] _sampledSamplerLogProb;

    // Token-wise rows grouped by the size of their candidate set (the kernel takes one size per call).
    private readonly Dictionary<int, TiltGroup> _tiltGroups = [];

    // Rows that ask for their top-N alternatives: [tops, vocab] logits copied at queueing, N per row, and the results
    // [tops, max N] of the one top-N pass per step.
    private float[] _topLogits = [];
    private int[] _topN = [];
    private int[] _topRows = [];
    private int[] _topTokens = [];          // [tops] a given token whose log p is wanted too (teacher forcing), -1 = none
    private double[] _topTokenLogProbs = [];
    private bool _anyTopToken;
    private int[] _topIds = [];
    private double[] _topLogProbs = [];
    private int _tops, _topWidth;

    // Value evaluations, grouped by trained head (one batched kernel call per head) or evaluated one request at a time.
    private readonly List<ValueRequest> _values = [];

    public StepBatch(int vocab, int hidden, int capacity)
    {
        _vocab = vocab;
        _hidden = hidden;
        _sequences = new int[capacity];
        _tokens = new int[capacity];
        _orderedSequences = new int[capacity];
        _orderedTokens = new int[capacity];
        _rowOf = new int[capacity];
        _sampleLogits = new float[capacity * vocab];
        _sampleRow = new int[capacity];
        _slotOf = new int[capacity];
        _rowParameters = new SamplingParameters[capacity];
        _rowKeys = new RngKey[capacity];
        _sampleParameters = new SamplingParameters[capacity];
        _sampleKeys = new RngKey[capacity];
        _sampledTokens = new int[capacity];
        _sampledBaseLogProb = new float[capacity];
        _sampledSamplerLogProb = new float[capacity];
    }

    /// <summary>Entries of the decode call.</summary>
    public int Decodes { get; private set; }

    /// <summary>Rows sampled from the base model this iteration.</summary>
    public int Samples { get; private set; }

    /// <summary>The logical sequences of the decode entries, in the order they were added.</summary>
    public ReadOnlySpan<int> DecodeSequences => _sequences.AsSpan(0, Decodes);

    /// <summary>After <see cref="Order"/>: the physical sequence ids of the decode, ascending, and their tokens.</summary>
    public ReadOnlySpan<int> OrderedSequences => _orderedSequences.AsSpan(0, Decodes);

    public ReadOnlySpan<int> OrderedTokens => _orderedTokens.AsSpan(0, Decodes);

    /// <summary>Contiguous runs of physical ids in the last ordered decode (llama.cpp's micro-batches for it).</summary>
    public int Runs { get; private set; }

    /// <summary>The output row of the decode entry <paramref name="handle"/> (what <see cref="AddDecode"/> returned).</summary>
    public int Row(int handle) => _rowOf[handle];

    public void Clear()
    {
        Decodes = 0;
        Samples = 0;
        foreach (var group in _tiltGroups.Values) group.Count = 0;
        _values.Clear();
        _tops = 0;
        _anyTopToken = false;
    }

    /// <summary>
    /// Appends <paramref name="token"/> to the logical <paramref name="sequence"/> in this iteration's decode; returns a handle
    /// whose output row <see cref="Row"/> gives after the decode.
    /// </summary>
    public int AddDecode(int sequence, int token)
    {
        if (Decodes == _sequences.Length)
        {
            int n = Decodes * 2;
            Array.Resize(ref _sequences, n);
            Array.Resize(ref _tokens, n);
            Array.Resize(ref _orderedSequences, n);
            Array.Resize(ref _orderedTokens, n);
            Array.Resize(ref _rowOf, n);
        }
        _sequences[Decodes] = sequence;
        _tokens[Decodes] = token;
        return Decodes++;
    }

    /// <summary>
    /// Lays the decode out for llama.cpp: entries sorted by physical sequence id (llama.cpp closes a micro-batch at every
    /// gap or descent in the ids; <see cref="SequencePlacement"/>), and each handle's output row recorded.
    /// </summary>
    public void Order(SequencePlacement placement)
    {
        int n = Decodes;
        var physical = _orderedSequences.AsSpan(0, n);
        var entries = _rowOf.AsSpan(0, n); // scratch: entry indices, sorted by physical id
        for (int i = 0; i < n; i++)
        {
            physical[i] = placement.Physical(_sequences[i]);
            entries[i] = i;
        }
        physical.Sort(entries);
        for (int row = 0; row < n; row++) _orderedTokens[row] = _tokens[entries[row]];
        // Invert in place through the tokens' order: entries[row] = entry -> _rowOf[entry] = row.
        Span<int> inverse = n <= 256 ? stackalloc int[n] : new int[n];
        for (int row = 0; row < n; row++) inverse[entries[row]] = row;
        inverse.CopyTo(_rowOf);
        Runs = SequencePlacement.Runs(physical);
    }

    /// <summary>Queues a row for base sampling from <paramref name="logits"/> ([vocab], copied now); returns its handle.</summary>
    public int AddSample(ReadOnlySpan<float> logits, SamplingParameters parameters, RngKey key)
    {
        if (Samples == _sampleParameters.Length) GrowSamples();
        logits[.._vocab].CopyTo(_sampleLogits.AsSpan(Samples * _vocab, _vocab));
        _sampleRow[Samples] = -1;
        _sampleParameters[Samples] = parameters;
        _sampleKeys[Samples] = key;
        return Samples++;
    }

    /// <summary>
    /// Queues output row <paramref name="row"/> of this iteration's decode for base sampling, without copying it (see
    /// <see cref="Sample"/>); returns its handle.
    /// </summary>
    public int AddSampleRow(int row, SamplingParameters parameters, RngKey key)
    {
        if (Samples == _sampleParameters.Length) GrowSamples();
        _sampleRow[Samples] = row;
        _sampleParameters[Samples] = parameters;
        _sampleKeys[Samples] = key;
        return Samples++;
    }

    /// <summary>
    /// Queues a row for the top-N pass (<paramref name="logits"/> [vocab], copied now), with a given next token whose log p
    /// is wanted as well (teacher forcing; -1 = none); returns its handle.
    /// </summary>
    public int AddTopLogProbs(ReadOnlySpan<float> logits, int n, int token = -1)
    {
        if (_tops == _topN.Length)
        {
            int size = Math.Max(4, _tops * 2);
            Array.Resize(ref _topLogits, size * _vocab);
            Array.Resize(ref _topN, size);
            Array.Resize(ref _topRows, size);
            Array.Resize(ref _topTokens, size);
            Array.Resize(ref _topTokenLogProbs, size);
            for (int i = _tops; i < size; i++) _topRows[i] = i;
        }
        logits[.._vocab].CopyTo(_topLogits.AsSpan(_tops * _vocab, _vocab));
        _topN[_tops] = n;
        _topTokens[_tops] = token;
        _anyTopToken |= token >= 0;
        return _tops++;
    }

    /// <summary>After <see cref="Sample"/>: log p (float64) of the token given to <see cref="AddTopLogProbs"/>.</summary>
    public double GivenTokenLogProb(int handle) => _topTokenLogProbs[handle];

    /// <summary>After <see cref="Sample"/>: the alternatives of a top-N row, most likely first.</summary>
    public TopLogProb[] TopLogProbs(int handle)
    {
        int n = _topN[handle], at = handle * _topWidth, count = 0;
        while (count < n && _topIds[at + count] >= 0) count++;
        var top = new TopLogProb[count];
        for (int i = 0; i < count; i++) top[i] = new TopLogProb(_topIds[at + i], _topLogProbs[at + i]);
        return top;
    }

    public int SampledToken(int handle) => _sampledTokens[_slotOf[handle]];
    public float SampledBaseLogProb(int handle) => _sampledBaseLogProb[_slotOf[handle]];
    public float SampledSamplerLogProb(int handle) => _sampledSamplerLogProb[_slotOf[handle]];

    /// <summary>
    /// Samples every queued row: one base-sampling call, one tilted call per candidate-set size, and one top-N pass over
    /// the rows that ask for alternatives (none when no request does).
    /// </summary>
    public void Sample(IStepKernels kernels, ReadOnlySpan<float> decodeLogits)
    {
        if (_tops > 0)
        {
            _topWidth = 0;
            for (int i = 0; i < _tops; i++) _topWidth = Math.Max(_topWidth, _topN[i]);
            if (_topIds.Length < _tops * _topWidth)
            {
                _topIds = new int[_topN.Length * _topWidth];
                _topLogProbs = new double[_topN.Length * _topWidth];
            }
            kernels.TopLogProbs(_topLogits.AsSpan(0, _tops * _vocab), _vocab, _topRows.AsSpan(0, _tops), _topWidth, _topIds, _topLogProbs,
                _anyTopToken ? _topTokens.AsSpan(0, _tops) : default, _anyTopToken ? _topTokenLogProbs.AsSpan(0, _tops) : default);
        }
        if (Samples > 0) SampleBase(kernels, decodeLogits);
        foreach (var g in _tiltGroups.Values)
        {
            if (g.Count == 0) continue;
            kernels.TiltedStep(g.Logits.AsSpan(0, g.Count * _vocab), g.Count, _vocab,
                g.CandidateIds.AsSpan(0, g.Count * g.Candidates), g.Candidates, g.Values.AsSpan(0, g.Count * g.Candidates),
                g.Beta.AsSpan(0, g.Count), g.Parameters.AsSpan(0, g.Count), g.Keys.AsSpan(0, g.Count),
                g.Tokens, g.BaseLogProb, g.TiltedLogProb, g.Kl);
        }
    }

    /// <summary>
    /// The one base-sampling call. Each row's token depends only on its logits, parameters and key, so laying the rows out in
    /// the decode's order instead of the handles' changes no result.
    /// </summary>
    private void SampleBase(IStepKernels kernels, ReadOnlySpan<float> decodeLogits)
    {
        int n = Samples;
        SampledInPlace = SamplesAreTheDecodeRows(decodeLogits.Length / _vocab);
        if (SampledInPlace)
        {
            for (int h = 0; h < n; h++)
            {
                int row = _sampleRow[h];
                _rowParameters[row] = _sampleParameters[h];
                _rowKeys[row] = _sampleKeys[h];
                _slotOf[h] = row;
            }
            kernels.SampleBase(decodeLogits[..(n * _vocab)], n, _vocab, _rowParameters.AsSpan(0, n), _rowKeys.AsSpan(0, n),
                _sampledTokens, _sampledBaseLogProb, _sampledSamplerLogProb);
            return;
        }
        for (int h = 0; h < n; h++)
        {
            if (_sampleRow[h] >= 0) decodeLogits.Slice(_sampleRow[h] * _vocab, _vocab).CopyTo(_sampleLogits.AsSpan(h * _vocab, _vocab));
            _slotOf[h] = h;
        }
        kernels.SampleBase(_sampleLogits.AsSpan(0, n * _vocab), n, _vocab, _sampleParameters.AsSpan(0, n),
            _sampleKeys.AsSpan(0, n), _sampledTokens, _sampledBaseLogProb, _sampledSamplerLogProb);
    }

    /// <summary>True when the last <see cref="Sample"/> read the decode's logits in place (no copy).</summary>
    public bool SampledInPlace { get; private set; }

    /// <summary>True when the queued samples are each decode row exactly once (generation and best-of-n steps).</summary>
    private bool SamplesAreTheDecodeRows(int decodeRows)
    {
        if (Samples != decodeRows) return false;
        Span<bool> seen = decodeRows <= 1024 ? stackalloc bool[decodeRows] : new bool[decodeRows];
        for (int h = 0; h < Samples; h++)
        {
            int row = _sampleRow[h];
            if (row < 0 || seen[row]) return false;
            seen[row] = true;
        }
        return true;
    }

    private void GrowSamples()
    {
        int n = _sampleParameters.Length * 2;
        Array.Resize(ref _sampleRow, n);
        Array.Resize(ref _slotOf, n);
        Array.Resize(ref _rowParameters, n);
        Array.Resize(ref _rowKeys, n);
        Array.Resize(ref _sampleLogits, n * _vocab);
        Array.Resize(ref _sampleParameters, n);
        Array.Resize(ref _sampleKeys, n);
        Array.Resize(ref _sampledTokens, n);
        Array.Resize(ref _sampledBaseLogProb, n);
        Array.Resize(ref _sampledSamplerLogProb, n);
    }
}
