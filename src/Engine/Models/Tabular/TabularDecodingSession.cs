namespace Tilt.Engine.Models.Tabular;

/// <summary>
/// <see cref="IDecodingSession"/> over a <see cref="TabularModel"/>: a sequence's "cache" is its Markov
/// state, so forks and copies are exact and free. Logits are log-probabilities (-inf for impossible
/// tokens); the hidden state is the one-hot of the state.
/// </summary>
internal sealed class TabularDecodingSession : IDecodingSession
{
    private readonly TabularModel _model;
    private readonly int[] _state;   // [MaxSequences] Markov state, -1 = empty
    private readonly int[] _lengths; // [MaxSequences]
    private readonly float[] _logits; // [MaxSequences, V]
    private readonly float[] _hidden; // [MaxSequences, V + 1]

    public TabularDecodingSession(TabularModel model, SessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _model = model;
        MaxSequences = options.MaxSequences;
        MaxSequenceLength = options.MaxSequenceLength;
        VocabularySize = model.Info.VocabularySize;
        HiddenSize = model.Info.HiddenSize;
        _state = Enumerable.Repeat(-1, MaxSequences).ToArray();
        _lengths = new int[MaxSequences];
        _logits = new float[MaxSequences * VocabularySize];
        _hidden = new float[MaxSequences * HiddenSize];
    }

    public int MaxSequences { get; }
    public int MaxSequenceLength { get; }
    public int VocabularySize { get; }
    public int HiddenSize { get; }
    public int OutputRows { get; private set; }
    public ReadOnlySpan<float> Logits => _logits.AsSpan(0, OutputRows * VocabularySize);
    public ReadOnlySpan<float> Hidden => _hidden.AsSpan(0, OutputRows * HiddenSize);

    public int Length(int sequence)
    {
        Check(sequence);
        return _lengths[sequence];
    }

    public void Prefill(int sequence, ReadOnlySpan<int> tokens)
    {
        Check(sequence);
        if (_state[sequence] != -1)
            throw new InvalidOperationException($"sequence {sequence} is not empty; remove it before a prefill");
        if (tokens.Length >= MaxSequenceLength)
            throw new RequestException($"the prompt has {tokens.Length} tokens but a sequence holds at most {MaxSequenceLength} (prompt + generated)");
        CheckTokens(tokens);
        _state[sequence] = _model.StateAfter(tokens);
        _lengths[sequence] = tokens.Length;
        OutputRows = 1;
        WriteRow(0, _state[sequence]);
    }

    public void Step(ReadOnlySpan<int> sequences, ReadOnlySpan<int> tokens)
    {
        if (sequences.Length != tokens.Length)
            throw new ArgumentException($"{sequences.Length} sequences but {tokens.Length} tokens", nameof(tokens));
        if (sequences.Length == 0) throw new ArgumentException("a step needs at least one sequence", nameof(sequences));
        SequenceSet.CheckDistinct(sequences, MaxSequences);
        CheckTokens(tokens);
        for (int i = 0; i < sequences.Length; i++)
        {
            int s = sequences[i];
            if (_state[s] == -1) throw new InvalidOperationException($"sequence {s} is empty: prefill or copy a prompt into it first");
            if (_state[s] == _model.Info.EosToken) throw new InvalidOperationException($"sequence {s} already ended with EOS");
            if (_lengths[s] >= MaxSequenceLength) throw new RequestException($"sequence {s} is full ({MaxSequenceLength} tokens)");
        }
        for (int i = 0; i < sequences.Length; i++)
        {
            int s = sequences[i];
            _state[s] = tokens[i];
            _lengths[s]++;
            WriteRow(i, tokens[i]);
        }
        OutputRows = sequences.Length;
    }

    public void CopySequence(int source, int destination)
    {
        Check(source);
        Check(destination);
        _state[destination] = _state[source];
        _lengths[destination] = _lengths[source];
    }

    public void RemoveSequence(int sequence)
    {
        Check(sequence);
        _state[sequence] = -1;
        _lengths[sequence] = 0;
    }

    public void Dispose()
    {
    }

    private void WriteRow(int row, int state)
    {
        var logits = _logits.AsSpan(row * VocabularySize, VocabularySize);
        if (state == _model.Info.EosToken)
        {
            // A finished sequence has no next token; -inf everywhere says so without inventing one.
            logits.Fill(float.NegativeInfinity);
        }
        else
        {
            for (int t = 0; t < VocabularySize; t++)
            {
                double p = _model.NextProbability(state, t);
                logits[t] = p > 0 ? (float)Math.Log(p) : float.NegativeInfinity;
            }
        }
        var hidden = _hidden.AsSpan(row * HiddenSize, HiddenSize);
        hidden.Clear();
        hidden[state] = 1f;
    }

    private void Check(int sequence) => SequenceSet.CheckSequence(sequence, MaxSequences);

    private void CheckTokens(ReadOnlySpan<int> tokens) => SequenceSet.CheckTokens(tokens, VocabularySize);
}
