using LLama;
using LLama.Common;
using LLama.Exceptions;
using LLama.Native;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// <see cref="IDecodingSession"/> on one llama.cpp context. Settings measured fastest for K >= 16 on
/// this engine's targets (ARCHITECTURE.md): non-unified KV cache by default (a unified cache makes every
/// query scan all K x L cells, 5-6x slower at K = 64 independent sequences; <see cref="KvLayout.Shared"/>
/// opts into it for strategies whose sequences share one prefix), flash attention off (forked sequences
/// drift up to 3e-3 with it), embeddings on with no pooling so each pass yields logits AND final hidden
/// states.
/// </summary>
internal sealed unsafe class GgufDecodingSession : IDecodingSession
{
    private readonly LLamaContext _context;
    private readonly SafeLLamaContextHandle _handle;
    private readonly LLamaBatch _batch = new();
    private readonly int[] _lengths;
    private readonly int _prefillChunk;
    private float* _logits;
    private float* _hidden;
    private bool _disposed;
    private readonly int _threads;       // the engine's llama.cpp threads
    private readonly long _parameters;   // the model's parameter count: a decode's work is about rows x parameters
    private int _activeThreads;          // what the context is set to now

    public GgufDecodingSession(LLamaWeights weights, ModelInfo info, SessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        MaxSequences = options.MaxSequences;
        VocabularySize = info.VocabularySize;
        HiddenSize = info.HiddenSize;
        _lengths = new int[MaxSequences];

        _threads = CpuTopology.Resolve(options.Threads);
        int batchSize = Math.Max(options.PrefillChunk, MaxSequences);
        bool shared = options.KvLayout == KvLayout.Shared;
        // Shared pool: the prefix once plus private room per sequence; per-sequence: K x length.
        long cells = shared
            ? (long)options.MaxSequenceLength + (long)options.SharedCellsPerSequence * MaxSequences
            : (long)MaxSequences * options.MaxSequenceLength;
        CheckMemory(weights, info, options, cells, batchSize);
        var parameters = new ModelParams(info.Path)
        {
            ContextSize = checked((uint)cells),
            SeqMax = (uint)MaxSequences,
            BatchSize = (uint)batchSize,
            UBatchSize = (uint)batchSize,
            Embeddings = true,
            PoolingType = LLamaPoolingType.None,
            FlashAttention = false,
            KVUnified = shared,
            TypeK = options.KvCacheType == KvCacheType.F32 ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
            TypeV = options.KvCacheType == KvCacheType.F32 ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16,
            // Default: every physical core (CpuTopology), not LLamaSharp's half of the logical CPUs.
            Threads = _threads,
            BatchThreads = _threads,
        };

        LlamaNative.BeginCapture();
        try
        {
            _context = weights.CreateContext(parameters);
        }
        catch (RuntimeError e)
        {
            throw new TiltException($"llama.cpp could not create a context for {MaxSequences} x {options.MaxSequenceLength} tokens: {e.Message} {LlamaNative.CapturedErrors()}".TrimEnd(), e);
        }
        _handle = _context.NativeHandle;
        _activeThreads = _threads;
        _parameters = (long)weights.ParameterCount;
        if (_handle.IsInvalid)
        {
            _context.Dispose();
            throw new TiltException($"llama.cpp could not create a context for {MaxSequences} x {options.MaxSequenceLength} tokens: {LlamaNative.CapturedErrors()}".TrimEnd());
        }

        // llama.cpp may round the context up (each sequence owns n_ctx / n_seq_max cells) and caps the
        // batch at n_ctx; read back what it chose rather than assume.
        uint perSequence = shared ? _handle.ContextSize : _handle.ContextSize / (uint)MaxSequences;
        if (perSequence < (uint)options.MaxSequenceLength)
        {
            _context.Dispose();
            throw new TiltException($"llama.cpp gave {_handle.ContextSize} context cells for {MaxSequences} sequences of {options.MaxSequenceLength} tokens");
        }
        MaxSequenceLength = options.MaxSequenceLength;
        _prefillChunk = (int)Math.Min(_handle.BatchSize, (uint)options.PrefillChunk);
        if (_handle.BatchSize < (uint)MaxSequences)
        {
            _context.Dispose();
            throw new TiltException($"llama.cpp's batch ({_handle.BatchSize}) is smaller than the {MaxSequences} sequences of one step");
        }
    }

    public int MaxSequences { get; }
    public int MaxSequenceLength { get; }

    /// <summary>
    /// Refuses, before llama.cpp tries to allocate it, a context whose KV cache and output buffers exceed the memory
    /// this process may use (physical memory, or the container's limit): llama.cpp would otherwise try to allocate
    /// it and fail late, or take the machine into swap.
    /// </summary>
    private static void CheckMemory(LLamaWeights weights, ModelInfo info, SessionOptions options, long cells, int batchSize)
    {
        var model = weights.NativeHandle;
        double headDim = model.HeadCount > 0 ? (double)info.HiddenSize / model.HeadCount : info.HiddenSize;
        double kvPerCell = 2.0 * model.LayerCount * Math.Max(1, model.KVHeadCount) * headDim * (options.KvCacheType == KvCacheType.F32 ? 4 : 2);
        double outputs = 4.0 * batchSize * ((double)info.VocabularySize + info.HiddenSize);
        double need = cells * kvPerCell + outputs;
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (cells > uint.MaxValue || (available > 0 && need > available))
        {
            throw new RequestException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"a context of {cells:N0} KV cells ({options.MaxSequences} sequences of up to {options.MaxSequenceLength} tokens) needs about {need / (1L << 30):F1} GiB, " +
                $"more than the {available / (double)(1L << 30):F1} GiB of memory available; lower the samples, candidates, max tokens or block size"));
        }
    }
    public int VocabularySize { get; }
    public int HiddenSize { get; }
    public int OutputRows { get; private set; }

    public ReadOnlySpan<float> Logits => new(_logits, OutputRows * VocabularySize);
    public ReadOnlySpan<float> Hidden => new(_hidden, OutputRows * HiddenSize);

    public int Length(int sequence)
    {
        CheckSequence(sequence);
        return _lengths[sequence];
    }

    public void Prefill(int sequence, ReadOnlySpan<int> tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckSequence(sequence);
        if (_lengths[sequence] != 0)
            throw new InvalidOperationException($"sequence {sequence} is not empty ({_lengths[sequence]} tokens); remove it before a prefill");
        if (tokens.Length == 0)
            throw new ArgumentException("a GGUF prompt needs at least one token (BOS is added by Tokenize)", nameof(tokens));
        if (tokens.Length >= MaxSequenceLength)
            throw new RequestException($"the prompt has {tokens.Length} tokens but a sequence holds at most {MaxSequenceLength} (prompt + generated); shorten the prompt or raise the length limit");
        CheckTokens(tokens);

        // With embeddings on, llama.cpp makes every token of a batch an output (logits for the whole
        // prompt: vocab x d x n wasted FLOPs, and row 0 would be the first token's). So the bulk of the
        // prompt goes through with embeddings off and no outputs, and only the last token is decoded
        // with embeddings on.
        int bulk = tokens.Length - 1;
        if (bulk > 0)
        {
            _handle.SetEmbeddings(false);
            try
            {
                for (int start = 0; start < bulk; start += _prefillChunk)
                {
                    int end = Math.Min(bulk, start + _prefillChunk);
                    _batch.Clear();
                    for (int i = start; i < end; i++)
                        _batch.Add((LLamaToken)tokens[i], i, (LLamaSeqId)sequence, false);
                    Decode(0);
                }
            }
            finally
            {
                _handle.SetEmbeddings(true);
            }
        }
        _batch.Clear();
        _batch.Add((LLamaToken)tokens[bulk], bulk, (LLamaSeqId)sequence, true);
        Decode(1);
        _lengths[sequence] = tokens.Length;
    }

    public void Step(ReadOnlySpan<int> sequences, ReadOnlySpan<int> tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (sequences.Length != tokens.Length)
            throw new ArgumentException($"{sequences.Length} sequences but {tokens.Length} tokens", nameof(tokens));
        if (sequences.Length == 0)
            throw new ArgumentException("a step needs at least one sequence", nameof(sequences));
        CheckTokens(tokens);
        _batch.Clear();
        SequenceSet.CheckDistinct(sequences, MaxSequences);
        for (int i = 0; i < sequences.Length; i++)
        {
            int s = sequences[i];
            if (_lengths[s] == 0) throw new InvalidOperationException($"sequence {s} is empty: prefill or copy a prompt into it first");
            if (_lengths[s] >= MaxSequenceLength)
                throw new RequestException($"sequence {s} is full ({MaxSequenceLength} tokens)");
            _batch.Add((LLamaToken)tokens[i], _lengths[s], (LLamaSeqId)s, true);
        }
        Decode(sequences.Length);
        for (int i = 0; i < sequences.Length; i++) _lengths[sequences[i]]++;
    }

    public void CopySequence(int source, int destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckSequence(source);
        CheckSequence(destination);
        if (source == destination) return;
        // Non-unified KV: a partial seq_cp aborts the process and seq_keep leaves other sequences, so a
        // whole-sequence remove + copy is the only safe move (ARCHITECTURE.md).
        _handle.MemorySequenceRemove((LLamaSeqId)destination, -1, -1);
        _handle.MemorySequenceCopy((LLamaSeqId)source, (LLamaSeqId)destination, -1, -1);
        _lengths[destination] = _lengths[source];
    }

    public void RemoveSequence(int sequence)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckSequence(sequence);
        _handle.MemorySequenceRemove((LLamaSeqId)sequence, -1, -1);
        _lengths[sequence] = 0;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _logits = null;
        _hidden = null;
        OutputRows = 0;
        _context.Dispose();
    }

    /// <summary>
    /// Below this many rows x parameters a decode runs on one llama.cpp thread. ggml splits every op of the graph across
    /// its threads with a barrier after each, and for a tiny decode the barriers cost more than the split saves; worse, a
    /// worker that any other runnable thread (an HTTP handler, a reward) pushes off its core stalls every barrier after it.
    /// stories260K (0.3M parameters), in-process, 1 / 2 threads: 0.23 / 0.65 ms per decode of 1 row, 0.82 / 0.94 ms for
    /// 4 rows, 3.6 / 2.9 ms for 16 (docs/performance.md); on two threads its 4-row requests beside HTTP clients spent
    /// 4-8 ms per decode in some runs. The 15M model's single row (24M) already runs 1.9x faster on two threads.
    /// </summary>
    internal const long SingleThreadWork = 2_000_000;

    /// <summary>The threads llama.cpp's context is set to now (what the last decode ran on).</summary>
    internal int LlamaThreads => (int)_handle.GenerationThreads;

    /// <summary>llama.cpp threads for a decode of <paramref name="rows"/> on a model of <paramref name="parameters"/>.</summary>
    internal static int ThreadsFor(int rows, long parameters, int threads) =>
        (long)rows * parameters < SingleThreadWork ? 1 : threads;

    private void Decode(int outputs)
    {
        OutputRows = 0;
        int threads = ThreadsFor(_batch.TokenCount, _parameters, _threads);
        if (threads != _activeThreads)
        {
            _handle.GenerationThreads = threads;
            _handle.BatchThreads = threads;
            _activeThreads = threads;
        }
        var result = _handle.Decode(_batch);
        if (result != DecodeResult.Ok)
        {
            throw result == DecodeResult.NoKvSlot
                ? new RequestException($"llama.cpp found no free KV cache slot for this batch (context {_handle.ContextSize} tokens)")
                : new TiltException($"llama_decode failed: {result}");
        }
        // Both buffers hold one row per output in batch order (llama.cpp reorders outputs back after
        // splitting a batch into micro-batches), so they can be read as [outputs, width] without copying.
        if (outputs == 0) return;
        _logits = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _handle.GetLogits(outputs).GetPinnableReference());
        _hidden = NativeApi.llama_get_embeddings(_handle);
        if (_logits == null || _hidden == null)
            throw new TiltException("llama.cpp returned no logits or hidden states for the batch");
        OutputRows = outputs;
    }

    private void CheckSequence(int sequence) => SequenceSet.CheckSequence(sequence, MaxSequences);

    private void CheckTokens(ReadOnlySpan<int> tokens) => SequenceSet.CheckTokens(tokens, VocabularySize);
}
