using System.Diagnostics;
using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Engine.Decoding;

/// <summary>
/// The loop that owns a model's one decoding session (one llama context, one KV pool) and steps every admitted request's
/// sequences together: vLLM's schedule -> execute -> update, llama-server's slots. Each iteration:
/// admit waiting requests in arrival order while sequences are free; let each request load its prompt (prompt cache or
/// prefill) and move KV; form ONE decode batch from every request's pending tokens; evaluate values (trained heads of every
/// request in one kernel call per head); ONE base-sampling kernel call over every row that samples from p and one token-wise
/// call per candidate-set size; then every request's step function advances. Requests are data the loop reads; only the
/// loop's thread touches the session and the kernels, so all per-step .NET work runs on the thread that calls llama_decode.
/// </summary>
internal sealed partial class Scheduler : IDisposable
{
    private readonly IStepKernels _kernels;
    private readonly EngineOptions _options;
    private readonly string _modelName;
    private readonly IDecodingSession _kv;        // the model's session, physical sequence ids
    private readonly SequencePlacement _placement; // logical <-> physical ids, owned here alone
    private readonly PlacedSession _session;      // what requests see: logical ids
    private readonly bool _compact;
    private readonly StepBatch _batch;
    private readonly PromptCache _prompts;
    private readonly StepContext _context;
    private readonly ScoringStage _scoring;
    private readonly KvMoves _kvPlan = new(); // what runs plan, applied by this loop after each hook
    private readonly List<RequestRun> _startedScoring = [];
    private readonly LinkedList<RequestRun> _queue = new();
    private readonly List<RequestRun> _running = [];
    private readonly List<(RequestRun Run, Exception Error)> _failed = [];
    private readonly object _gate = new(); // a Monitor: the loop waits on it for work
    private readonly Thread _thread;
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _accepting = true;
    private bool _stopping;
    private bool _cancelAll;
    private volatile int _liveSequences;
    private volatile int _runningCount;
    private long _iterations;
    private long _tokensDecoded;
    private long _decodeTicks; // Stopwatch ticks inside the batched decode
    private long _busyTicks;   // Stopwatch ticks of whole iterations
    private long _decodes;
    private long _decodeRuns;  // sum over decodes of the contiguous id runs (llama.cpp micro-batches) in each
    private volatile int _lastDecodeRuns;

    public Scheduler(ILanguageModel model, IStepKernels kernels, EngineOptions options)
    {
        _kernels = kernels;
        _options = options;
        _modelName = DecodingEngine.ModelNameOf(model, options);
        _kv = model.CreateSession(new SessionOptions
        {
            MaxSequences = options.MaxSequences,
            MaxSequenceLength = options.MaxSequenceLength,
            KvCacheType = options.KvCacheType,
            KvLayout = options.KvLayout,
            SharedCellsPerSequence = options.MaxSequenceLength, // worst case: no sharing at all
            Threads = options.Threads,
            PrefillChunk = options.PrefillChunk,
        });
        _placement = new SequencePlacement(options.MaxSequences);
        _session = new PlacedSession(_kv, _placement);
        // Only the per-sequence layout splits decodes at id gaps; in the shared (unified) pool a move would copy for nothing.
        _compact = options.CompactSequences && options.KvLayout == KvLayout.PerSequence;
        _batch = new StepBatch(model.Info.VocabularySize, model.Info.HiddenSize, options.MaxSequences);
        _prompts = new PromptCache(_session, options.PromptCacheEntries, SpareSequence, _kvPlan);
        _scoring = new ScoringStage(options.ScoringThreads, Wake);
        _context = new StepContext
        {
            Outputs = new StepOutputs(_session),
            Kv = _kvPlan,
            Batch = _batch,
            Model = model,
            Prompts = _prompts,
            Scoring = _scoring,
        };
        _thread = new Thread(Loop) { IsBackground = true, Name = "tilt-scheduler" };
        _thread.Start();
    }

    public int QueuedRequests
    {
        get
        {
            lock (_gate) return _queue.Count;
        }
    }

    public int RunningRequests => _runningCount;
    public int LiveSequences => _liveSequences;
    public long Iterations => Interlocked.Read(ref _iterations);
    public long TokensDecoded => Interlocked.Read(ref _tokensDecoded);
    public long CachedPromptTokens => _prompts.HitTokens;
    public TimeSpan DecodeTime => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _decodeTicks) + _prompts.PrefillTicks);
    public TimeSpan BusyTime => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _busyTicks));
    public long Decodes => Interlocked.Read(ref _decodes);
    public long DecodeRuns => Interlocked.Read(ref _decodeRuns);
    public int LastDecodeRuns => _lastDecodeRuns;
    public long SequenceMoves => Interlocked.Read(ref _moves);
    private long _moves;

    /// <summary>Scoring jobs started beside the loop, and those it moved on without (their request waited alone).</summary>
    public long ScoringJobs => _scoring.Started;

    public long ScoringParked => _scoring.Parked;

    /// <summary>
    /// Queues a run, or refuses it at once: <see cref="EngineBusyException"/> when the queue is full, <see cref="RequestException"/>
    /// when it can never fit, <see cref="EngineStoppingException"/> when the engine is stopping.
    /// </summary>
    public void Submit(RequestRun run)
    {
        if (run.SequencesNeeded > _options.MaxSequences)
            throw new RequestException($"the request needs {run.SequencesNeeded} parallel sequences but the engine holds at most {_options.MaxSequences} " +
                                       "(EngineOptions.MaxSequences); lower n / k / top-k or raise the engine's capacity");
        lock (_gate)
        {
            if (!_accepting) throw new EngineStoppingException();
            bool waits = _queue.Count > 0 || _placement.Free + _prompts.Count < run.SequencesNeeded;
            if (waits && _queue.Count >= _options.MaxQueuedRequests)
                throw new EngineBusyException(_queue.Count, _options.MaxQueuedRequests);
            run.SubmittedIteration = Interlocked.Read(ref _iterations);
            var node = _queue.AddLast(run);
            // A request cancelled while it waits leaves the queue at once; one already admitted is dropped by the loop.
            run.Cancellation.Register(() =>
            {
                lock (_gate)
                {
                    Monitor.PulseAll(_gate); // an admitted run waiting for a score is dropped by the loop, which may sleep
                    if (node.List is null) return;
                    _queue.Remove(node);
                }
                run.Complete(new OperationCanceledException(run.Cancellation));
            });
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Stops admitting; completes when every admitted and queued request has finished.</summary>
    public Task StopAdmitting()
    {
        lock (_gate)
        {
            _accepting = false;
            if (_queue.Count == 0 && _running.Count == 0) _idle.TrySetResult();
            Monitor.PulseAll(_gate);
        }
        return _idle.Task;
    }

    /// <summary>Cancels every queued and running request (the end of a shutdown's drain).</summary>
    public void CancelAll()
    {
        List<RequestRun> queued;
        lock (_gate)
        {
            queued = [.. _queue];
            _queue.Clear();
            _cancelAll = true;
            if (!_accepting && _running.Count == 0) _idle.TrySetResult();
            Monitor.PulseAll(_gate);
        }
        foreach (var run in queued) run.Complete(new OperationCanceledException("the engine shut down before the request was admitted"));
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopping) return;
            _stopping = true;
            _accepting = false;
            Monitor.PulseAll(_gate);
        }
        _thread.Join();
        var error = new ObjectDisposedException(nameof(DecodingEngine), "the engine was disposed before the request finished");
        foreach (var run in _queue) run.Complete(error);
        foreach (var run in _running) run.Complete(error);
        _queue.Clear();
        _running.Clear();
        _kv.Dispose();
        _scoring.Dispose();
        _idle.TrySetResult();
    }

    private void Loop()
    {
        while (true)
        {
            lock (_gate)
            {
                while (true)
                {
                    if (_stopping) return;
                    Admit();
                    if (_running.Count > 0 && !AllWaiting()) break;
                    if (!_accepting && _running.Count == 0 && _queue.Count == 0) _idle.TrySetResult();
                    // Nothing to step: no request, or every running one waits for a score (a job's end pulses the gate).
                    Monitor.Wait(_gate);
                }
            }
            long started = Stopwatch.GetTimestamp();
            try
            {
                Iterate();
            }
            catch (Exception e)
            {
                // A failure of the shared step (the decode or a kernel call) fails every request in it.
                foreach (var run in _running.ToArray()) Release(run, e);
            }
            Interlocked.Add(ref _busyTicks, Stopwatch.GetTimestamp() - started);
            _runningCount = _running.Count;
            int live = 0;
            foreach (var run in _running) live += run.LiveSequences;
            _liveSequences = live;
        }
    }

    private void Iterate()
    {
        bool all;
        lock (_gate) all = _cancelAll;
        for (int i = _running.Count - 1; i >= 0; i--)
        {
            var run = _running[i];
            if (all) Release(run, new OperationCanceledException("the engine shut down before the request finished"));
            else if (run.Cancellation.IsCancellationRequested) Release(run, new OperationCanceledException(run.Cancellation));
        }
        if (_running.Count == 0) return;
        ApplyScores();

        _batch.Clear();
        _context.LastDecode = TimeSpan.Zero;
        GrantWanted();
        Each(static (run, c) => run.Prepare(c));
        Each(static (run, c) => run.Plan(c));
        if (_batch.Decodes > 0)
        {
            if (_compact) Interlocked.Add(ref _moves, _placement.Compact(_batch.DecodeSequences, _kv));
            _batch.Order(_placement);
            long started = Stopwatch.GetTimestamp();
            _kv.Step(_batch.OrderedSequences, _batch.OrderedTokens);
            long ended = Stopwatch.GetTimestamp();
            _lastDecodeRuns = _batch.Runs;
            var model = new KeyValuePair<string, object?>("gen_ai.request.model", _modelName);
            EngineTelemetry.DecodeRows.Record(_batch.Decodes, model);
            EngineTelemetry.DecodeIdRuns.Record(_batch.Runs, model);
            Interlocked.Add(ref _decodeRuns, _batch.Runs);
            Interlocked.Increment(ref _decodes);
            _context.LastDecode = Stopwatch.GetElapsedTime(started, ended);
            Interlocked.Add(ref _decodeTicks, ended - started);
            Interlocked.Add(ref _tokensDecoded, _batch.Decodes);
        }
        Each(static (run, c) => run.Score(c));
        foreach (var (owner, error) in _batch.EvaluateValues(_kernels, _scoring, _startedScoring)) _failed.Add(((RequestRun)owner, error));
        ReleaseFailed();
        AwaitScoring();
        Each(static (run, c) => run.Propose(c));
        _batch.Sample(_kernels, _session.Logits);
        Each(static (run, c) => run.Advance(c));
        FreeReleased();
        for (int i = _running.Count - 1; i >= 0; i--)
            if (!_running[i].IsWaiting && !_running[i].HasScoringResult && _running[i].IsDone) Release(_running[i], null);
        Interlocked.Increment(ref _iterations);
    }

    /// <summary>Runs one hook of every request; a request whose hook throws fails alone and leaves the iteration.</summary>
    private void Each(Action<RequestRun, StepContext> hook)
    {
        foreach (var run in _running)
        {
            // A run waiting for a score has its result applied first; a finished one (its last score came back) only leaves.
            if (run.IsWaiting || run.HasScoringResult || run.IsDone) continue;
            Guarded(run, hook);
        }
        ReleaseFailed();
    }

    /// <summary>
    /// One hook of one request, then the KV moves it planned; when it throws, its moves are dropped and the request is marked
    /// failed (released by <see cref="ReleaseFailed"/>) without touching the others.
    /// </summary>
    private void Guarded(RequestRun run, Action<RequestRun, StepContext> hook)
    {
        try
        {
            hook(run, _context);
            _kvPlan.Apply(_session);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _kvPlan.Discard();
            _failed.Add((run, e));
        }
    }

    private void ReleaseFailed()
    {
        if (_failed.Count == 0) return;
        foreach (var (run, error) in _failed) Release(run, error);
        _failed.Clear();
    }

}
