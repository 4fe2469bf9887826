using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Sampling;
using Tilt.Engine.Statistics;
using Tilt.Engine.Strategies;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Decoding;

/// <summary>
/// One decoding engine per loaded model: every front-end (the CLI, the evaluator, the C API, the HTTP server, a .NET
/// service) sends its requests here. Requests wait in a bounded FIFO queue until they are admitted; a full queue is
/// refused at once with <see cref="EngineBusyException"/>. Thread-safe: any number of threads may submit requests.
/// </summary>
/// <remarks>
/// Every output of the engine, whatever the strategy, is an <see cref="AlignedSample"/> streamed as
/// <see cref="AlignEvent"/>s: plain generation reports each token as <see cref="TextAccepted"/> and each finished
/// sample as <see cref="SampleCompleted"/> (reward NaN without a reward; KL the sampler's log-ratio log q(y) - log p(y),
/// 0 at temperature 1 without filtering).
/// </remarks>
public sealed class DecodingEngine : IAsyncDisposable, IDisposable
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly SemaphoreSlim _turn = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private int _queued;
    private int _running;
    private bool _disposed;

    public DecodingEngine(ILanguageModel model, IStepKernels kernels, EngineOptions? options = null)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        Options = options ?? new EngineOptions();
    }

    /// <summary>The model this engine decodes.</summary>
    public ModelInfo Model => _model.Info;

    public EngineOptions Options { get; }

    /// <summary>Current load (queue depth, running requests, live sequences).</summary>
    public EngineStatus Status => new(Volatile.Read(ref _queued), Volatile.Read(ref _running), 0, Options.MaxSequences, 0, 0);

    /// <summary>All outputs of a request, in sample order; built on <see cref="StreamAsync"/>.</summary>
    public async Task<IReadOnlyList<AlignedSample>> RunAsync(DecodingRequest request, CancellationToken cancellationToken = default)
    {
        var results = new List<AlignedSample>();
        await foreach (var e in StreamAsync(request, cancellationToken).ConfigureAwait(false))
            if (e is SampleCompleted c) results.Add(c.Result);
        results.Sort((a, b) => a.Index.CompareTo(b.Index));
        return results;
    }

    /// <summary>
    /// Streams a request's events. Throws <see cref="EngineBusyException"/> when the queue is full, <see cref="RequestException"/>
    /// when the request can never fit, <see cref="OperationCanceledException"/> when cancelled.
    /// </summary>
    public async IAsyncEnumerable<AlignEvent> StreamAsync(DecodingRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(_disposed, this);
        request.Validate();
        if (Interlocked.Increment(ref _queued) > Options.MaxQueuedRequests + 1 && _turn.CurrentCount == 0)
        {
            int now = Interlocked.Decrement(ref _queued);
            throw new EngineBusyException(now, Options.MaxQueuedRequests);
        }
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        try
        {
            await _turn.WaitAsync(linked.Token).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _queued);
        }
        Interlocked.Increment(ref _running);
        try
        {
            await foreach (var e in Dispatch(request, linked.Token).ConfigureAwait(false))
                yield return e;
        }
        finally
        {
            Interlocked.Decrement(ref _running);
            _turn.Release();
        }
    }

    private IAsyncEnumerable<AlignEvent> Dispatch(DecodingRequest request, CancellationToken token)
    {
        var reward = request.Reward;
        IValueFunction Value() => request.Value ?? new PrefixRewardValue(reward!);
        return request.Options switch
        {
            GenerationOptions g => GenerateAsync(request.Prompt, g, reward, token),
            BestOfNOptions b => new BestOfNSampler(_model, _kernels, reward!).StreamAsync(request.Prompt, b, token),
            TokenwiseOptions t => new TokenwiseDecoder(_model, _kernels, Value(), reward!).StreamAsync(request.Prompt, t, token),
            BlockwiseOptions b => new BlockwiseDecoder(_model, _kernels, Value(), reward!).StreamAsync(request.Prompt, b, token),
            _ => throw new ArgumentException($"unsupported options type {request.Options.GetType().Name}"),
        };
    }

    private async IAsyncEnumerable<AlignEvent> GenerateAsync(string prompt, GenerationOptions options, IReward? reward,
        [EnumeratorCancellation] CancellationToken token)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var first = new TimeSpan?[options.Samples];
        await foreach (var e in new BaseSampler(_model, _kernels).StreamAsync(prompt, options, token).ConfigureAwait(false))
        {
            switch (e)
            {
                case TokenGenerated t:
                    first[t.Sample] ??= clock.Elapsed;
                    yield return new TextAccepted(t.Sample, [t.Token], t.TextDelta, 0);
                    break;
                case SampleFinished f:
                    var s = f.Sample;
                    double r = double.NaN;
                    if (reward is not null)
                    {
                        var scores = new double[1];
                        reward.ScoreChecked([new RewardInput { Prompt = prompt, Text = s.Text, Tokens = s.Tokens, IsFinished = s.Finish == FinishReason.Eos }], scores);
                        r = scores[0];
                    }
                    var kl = new KlReport(s.SamplerLogProb - s.LogProb, KlMethod.SamplerLogRatio);
                    yield return new SampleCompleted(new AlignedSample(s.Index, s.Text, s.Tokens, r, s.LogProb, kl, null,
                        s.Finish == FinishReason.Eos ? AlignFinish.Eos : AlignFinish.Length, s.Tokens.Count,
                        new AlignTimings(TimeSpan.Zero, first[s.Index] ?? clock.Elapsed, clock.Elapsed, s.Tokens.Count), []));
                    break;
            }
        }
    }

    /// <summary>
    /// Stops admitting requests; lets running ones finish within <paramref name="drain"/>, then cancels the rest.
    /// </summary>
    public async Task StopAsync(TimeSpan drain)
    {
        var until = DateTime.UtcNow + drain;
        while ((Volatile.Read(ref _running) > 0 || Volatile.Read(ref _queued) > 0) && DateTime.UtcNow < until)
            await Task.Delay(10).ConfigureAwait(false);
        await _stopping.CancelAsync().ConfigureAwait(false);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stopping.Cancel();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
