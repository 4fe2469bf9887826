using System.Diagnostics;
using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// One decoding engine per loaded model: every front-end (the CLI, the evaluator, the C API, the HTTP server, a .NET
/// service) sends its requests here, and a scheduler steps every admitted request's sequences in one batched decode and
/// one sampling kernel call per iteration (continuous batching across requests; docs/architecture.md). Requests wait in a
/// bounded FIFO queue until their sequences are free; a full queue is refused at once with <see cref="EngineBusyException"/>,
/// a request that can never fit with <see cref="RequestException"/> naming the limit. Thread-safe: any number of threads may
/// submit requests; cancelling one request (or abandoning its stream) frees its sequences at the next iteration without
/// disturbing the others.
/// </summary>
/// <remarks>
/// Every output, whatever the strategy, is an <see cref="AlignedSample"/> streamed as <see cref="AlignEvent"/>s: plain
/// generation reports each token as <see cref="TextAccepted"/> and each finished sample as <see cref="SampleCompleted"/>
/// (reward NaN without a reward; KL the sampler's log-ratio log q(y) - log p(y), 0 at temperature 1 without filtering).
/// A request's output for a seed does not depend on what else shares the batch: noise is keyed by the request's own
/// seed, request id and candidate row. Logits are bit-identical across batch compositions with the F32 KV cache
/// (<see cref="EngineOptions.KvCacheType"/>) and on tabular models; with llama.cpp's default F16 cache, rounding of cached
/// keys makes logits differ by up to ~1e-3 between compositions, which can flip a sampled token where two are that close.
/// </remarks>
public sealed partial class DecodingEngine : IAsyncDisposable, IDisposable
{
    private readonly ILanguageModel _model;
    private readonly Scheduler _scheduler;
    private int _disposed;

    /// <summary>Creates the engine and its one decoding session (a llama context sized by <paramref name="options"/>).</summary>
    public DecodingEngine(ILanguageModel model, IStepKernels kernels, EngineOptions? options = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        ArgumentNullException.ThrowIfNull(kernels);
        Options = options ?? new EngineOptions();
        _scheduler = new Scheduler(model, kernels, Options);
        ModelName = ModelNameOf(model, Options);
        EngineTelemetry.Register(this);
    }

    /// <summary>The model's name in telemetry: <see cref="EngineOptions.ModelName"/>, else the file name without extension.</summary>
    public string ModelName { get; }

    internal static string ModelNameOf(ILanguageModel model, EngineOptions options) =>
        options.ModelName ?? Path.GetFileNameWithoutExtension(model.Info.Path);

    /// <summary>The model this engine decodes.</summary>
    public ModelInfo Model => _model.Info;

    public EngineOptions Options { get; }

    /// <summary>Current load (queue depth, running requests, live sequences, iterations, tokens decoded).</summary>
    public EngineStatus Status => new(_scheduler.QueuedRequests, _scheduler.RunningRequests, _scheduler.LiveSequences, Options.MaxSequences,
        _scheduler.Iterations, _scheduler.TokensDecoded, _scheduler.CachedPromptTokens, _scheduler.DecodeTime, _scheduler.BusyTime,
        _scheduler.Decodes, _scheduler.DecodeRuns, _scheduler.LastDecodeRuns, _scheduler.SequenceMoves, _scheduler.ScoringJobs, _scheduler.ScoringParked);

    /// <summary>All outputs of a request, in sample order; built on <see cref="StreamAsync"/>.</summary>
    public async Task<IReadOnlyList<AlignedSample>> RunAsync(DecodingRequest request, CancellationToken cancellationToken = default)
    {
        var results = new List<AlignedSample>();
        await foreach (var e in Stream(request, streamText: false, cancellationToken).ConfigureAwait(false))
            if (e is SampleCompleted c) results.Add(c.Result);
        results.Sort((a, b) => a.Index.CompareTo(b.Index));
        return results;
    }

    /// <summary>
    /// Streams a request's events. The request is checked and queued when enumeration starts: <see cref="ArgumentException"/>
    /// for invalid fields, <see cref="RequestException"/> when it can never fit, <see cref="EngineBusyException"/> when the
    /// queue is full, <see cref="EngineStoppingException"/> after <see cref="StopAsync"/>. Cancelling the token, or leaving
    /// the enumeration early, cancels the request; it then throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public IAsyncEnumerable<AlignEvent> StreamAsync(DecodingRequest request, CancellationToken cancellationToken = default) =>
        Stream(request, streamText: true, cancellationToken);

    private async IAsyncEnumerable<AlignEvent> Stream(DecodingRequest request, bool streamText, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var run = Submit(request, streamText, cancellationToken, out var cancel);
        var telemetry = new RequestTelemetry(ModelName, run.Request, run.Activity, run.Clock);
        Exception? failure = null;
        bool completed = false;
        using (cancel)
        {
            try
            {
                // Events may be buffered ahead of the reader: a cancelled caller sees none of them.
                await using var events = run.Events.ReadAllAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
                while (true)
                {
                    try
                    {
                        if (!await events.MoveNextAsync().ConfigureAwait(false))
                        {
                            completed = true;
                            break;
                        }
                        cancellationToken.ThrowIfCancellationRequested();
                    }
                    catch (Exception e)
                    {
                        failure = e;
                        throw;
                    }

                    telemetry.Observe(events.Current);
                    yield return events.Current;
                }
            }
            finally
            {
                // Abandoned or finished: either way the scheduler must not keep the request's sequences.
                cancel.Cancel();
                // Left early without an error: the caller cancelled it by abandoning the stream.
                telemetry.End(failure ?? (completed ? null : new OperationCanceledException()));
            }
        }
    }

    /// <summary>
    /// True when this engine can run <paramref name="request"/>: its sequences and length fit. Otherwise <paramref name="why"/> says why, and
    /// the request can still run on an engine of its own (<see cref="StreamOnOwnEngine"/>).
    /// </summary>
    public bool CanServe(DecodingRequest request, out string? why)
    {
        ArgumentNullException.ThrowIfNull(request);
        var o = request.Options;
        int sequences = SequencesNeeded(o, Model.VocabularySize, Options.MaxSequences);
        why = sequences > Options.MaxSequences ? $"it needs {sequences} sequences, the engine holds {Options.MaxSequences}"
            : o.MaxTokens + 2 > Options.MaxSequenceLength ? $"max tokens {o.MaxTokens} do not fit the engine's sequences of {Options.MaxSequenceLength} tokens"
            : null;
        return why is null;
    }

    /// <summary>
    /// The one rule for how many engine sequences a request holds at once: K samples, n candidates, K blocks, or the top-k
    /// candidate tokens plus the prefix for token-wise CD (capped by the engine's <paramref name="capacity"/>).
    /// </summary>
    internal static int SequencesNeeded(DecodingOptions options, int vocabulary, int capacity) => options switch
    {
        GenerationOptions g => g.Samples,
        CandidatePoolOptions b => b.N,
        BlockwiseOptions b => b.K,
        BeamOptions b => b.K,
        RejectionOptions r => r.N,
        TokenwiseOptions t => Math.Min(t.Candidates == 0 ? vocabulary : Math.Min(t.Candidates, vocabulary), capacity - 1) + 1,
        ScoringOptions => 1,
        _ => throw new ArgumentException($"unsupported options type {options.GetType().Name}", nameof(options)),
    };

    /// <summary>
    /// Stops admitting requests (new ones get <see cref="EngineStoppingException"/>); lets running and queued ones finish
    /// within <paramref name="drain"/>, then cancels what is left. Completes when nothing runs any more.
    /// </summary>
    public async Task StopAsync(TimeSpan drain)
    {
        var idle = _scheduler.StopAdmitting();
        if (await Task.WhenAny(idle, Task.Delay(drain)).ConfigureAwait(false) != idle)
        {
            _scheduler.CancelAll();
            await idle.ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        EngineTelemetry.Unregister(this);
        _scheduler.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// KV cells one sequence of <paramref name="request"/> needs: the prompt, the forced prefix (decoded like more
    /// prompt), max tokens and one spare cell. An engine whose <see cref="EngineOptions.MaxSequenceLength"/> is at least
    /// this takes the request; callers that size an engine for known requests (the batch mode) use it.
    /// </summary>
    public static long CellsPerSequence(ILanguageModel model, DecodingRequest request)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        long forced = string.IsNullOrEmpty(request.ForcedPrefix) ? 0 : model.Tokenize(request.ForcedPrefix, addBos: false).Length;
        return (request.PromptTokens?.Count ?? model.Tokenize(request.Prompt).Length) + forced + request.Options.MaxTokens + 1L;
    }

    /// <summary>
    /// Scores <paramref name="continuation"/> after <paramref name="prompt"/> by teacher forcing, batched with every other
    /// request the engine runs: per-token log p at T = 1 and the <paramref name="topLogprobs"/> most likely alternatives of
    /// each row (and of the prompt's tokens on <paramref name="includePrompt"/>). Throws like <see cref="StreamAsync"/>.
    /// </summary>
    public async Task<ScoreResult> ScoreAsync(string prompt, string continuation, int topLogprobs = 0, bool includePrompt = false,
        CancellationToken cancellationToken = default)
    {
        var request = new DecodingRequest
        {
            Prompt = prompt,
            Options = new ScoringOptions
            {
                Continuation = continuation, TopLogprobs = topLogprobs, IncludePrompt = includePrompt,
            },
        };
        await foreach (var e in StreamAsync(request, cancellationToken).ConfigureAwait(false))
            if (e is ScoreCompleted done) return done.Result;
        throw new InvalidOperationException("the scoring request ended without a result");
    }

    /// <summary>
    /// The continuation's tokens as log-likelihood harnesses take them: prompt + continuation tokenized whole, after the
    /// prompt's own tokens; the continuation tokenized alone when the prompt's tokens are not a prefix of the whole.
    /// </summary>
    private int[] ScoringTokens(int[] prompt, string promptText, string continuation)
    {
        if (continuation.Length == 0) return [];
        int[] whole = _model.Tokenize(promptText + continuation);
        return whole.Length > prompt.Length && whole.AsSpan(0, prompt.Length).SequenceEqual(prompt)
            ? whole[prompt.Length..]
            : _model.Tokenize(continuation, addBos: false);
    }

    private RequestRun Submit(DecodingRequest request, bool streamText, CancellationToken cancellationToken, out CancellationTokenSource cancel)
    {
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        request.Validate(_model.Info.VocabularySize);
        var clock = Stopwatch.StartNew();
        // Tokenized once: by the caller when it had to count the tokens already, else here.
        int[] prompt = request.PromptTokens is { } given ? [.. given] : _model.Tokenize(request.Prompt);
        int[] forced = [];
        string forcedText = "";
        if (!string.IsNullOrEmpty(request.ForcedPrefix))
        {
            // Decoded after the prompt like more prompt; the reward sees it in front of every candidate; the value too by default.
            forced = _model.Tokenize(request.ForcedPrefix, addBos: false);
            forcedText = _model.Detokenize(forced);
            prompt = [.. prompt, .. forced];
            var whole = request.Reward is { } r ? new ForcedPrefixReward(r, forcedText, forced) : null;
            request = request with
            {
                Reward = whole,
                Value = request.Value ?? (whole is not null && request.Options is not GenerationOptions ? new PrefixRewardValue(whole) : null),
            };
        }
        int maxTokens = request.Options.MaxTokens;
        int[] continuation = [];
        if (request.Options is ScoringOptions scoring)
        {
            continuation = ScoringTokens(prompt, request.Prompt, scoring.Continuation);
            maxTokens = continuation.Length;
        }
        PromptLimits.Check(_model.Info, prompt.Length, maxTokens);
        // One spare cell: blockwise CD and best-of-n with hidden-state rewards decode the token that reaches the limit.
        long needed = (long)prompt.Length + maxTokens + 1;
        if (needed > Options.MaxSequenceLength)
            throw new RequestException($"the prompt ({prompt.Length} tokens) plus max tokens ({maxTokens}) needs {needed} cells per sequence, " +
                                       $"more than the engine's max sequence length of {Options.MaxSequenceLength} (EngineOptions.MaxSequenceLength); " +
                                       "shorten the prompt or lower max tokens");
        cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            RequestRun run = request.Options switch
            {
                GenerationOptions => new GenerationRun(request, prompt, clock, cancel.Token) { ForcedTokens = forced, ForcedText = forcedText },
                CandidatePoolOptions => new BestOfNRun(request, prompt, clock, cancel.Token) { ForcedTokens = forced, ForcedText = forcedText },
                TokenwiseOptions => new TokenwiseRun(request, prompt, clock, cancel.Token, _model.Info.VocabularySize, Options.MaxSequences)
                {
                    ForcedTokens = forced, ForcedText = forcedText,
                },
                BlockwiseOptions => new BlockwiseRun(request, prompt, clock, cancel.Token) { ForcedTokens = forced, ForcedText = forcedText },
                BeamOptions => new BeamRun(request, prompt, clock, cancel.Token) { ForcedTokens = forced, ForcedText = forcedText },
                RejectionOptions => new RejectionRun(request, prompt, clock, cancel.Token) { ForcedTokens = forced, ForcedText = forcedText },
                ScoringOptions s => new ScoreRun(request, prompt, continuation, s.IncludePrompt && prompt.Length > 0 ? prompt[..1] : prompt, clock, cancel.Token),
                _ => throw new ArgumentException($"unsupported options type {request.Options.GetType().Name}", nameof(request)),
            };
            run.StreamsText = streamText;
            run.Activity = EngineTelemetry.StartRequest(ModelName, request);
            try
            {
                _scheduler.Submit(run);
            }
            catch (Exception e)
            {
                // Busy or stopping: the request's span ends here, with the reason.
                new RequestTelemetry(ModelName, request, run.Activity, clock).End(e);
                throw;
            }
            return run;
        }
        catch
        {
            cancel.Dispose();
            throw;
        }
    }
}
