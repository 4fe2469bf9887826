using System.Diagnostics;
using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
using Tilt.Engine.Strategies;
using Tilt.Engine.Text;
using Tilt.Kernels;

namespace Tilt.Engine.Sampling;

/// <summary>
/// Samples K continuations of a prompt from the base model in one batch: prefill once, fork the KV cache
/// to K sequences, then one decode call and one batched sampling call per step. Sample i draws its noise
/// from the RNG row i, so it is the same text whatever K, the thread count or the backend.
/// </summary>
public sealed class BaseSampler
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;

    public BaseSampler(ILanguageModel model, IStepKernels kernels)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
    }

    /// <summary>Generates all samples; built on <see cref="StreamAsync"/>.</summary>
    public async Task<GenerationResult> GenerateAsync(string prompt, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        var samples = new GeneratedSample[options.Samples];
        GenerationTimings? timings = null;
        await foreach (var e in StreamAsync(prompt, options, cancellationToken).ConfigureAwait(false))
        {
            if (e is SampleFinished f) samples[f.Sample.Index] = f.Sample;
            else if (e is GenerationCompleted c) timings = c.Timings;
        }
        return new GenerationResult(samples, timings!);
    }

    /// <summary>
    /// Streams tokens as they are sampled. Cancellation is checked every step; a cancelled stream throws
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public async IAsyncEnumerable<GenerationEvent> StreamAsync(string prompt, GenerationOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        await Task.Yield(); // never run the decode loop inside the caller's synchronous call
        var clock = Stopwatch.StartNew();

        int[] promptTokens = _model.Tokenize(prompt);
        int k = options.Samples;
        PromptLimits.Check(_model.Info, promptTokens.Length, options.MaxTokens);

        using var session = _model.CreateSession(new SessionOptions
        {
            MaxSequences = k,
            MaxSequenceLength = promptTokens.Length + options.MaxTokens,
            Threads = options.Threads,
            KvCacheType = options.KvCacheType,
        });
        var (startLogits, startHidden) = PromptFork.PrefillAndFork(session, promptTokens, k);
        var prefillTime = clock.Elapsed;

        var rollout = new CandidateRollout(session, _kernels, _model.Info);
        var settings = new CandidateRollout.Settings
        {
            Candidates = k,
            Sequences = Enumerable.Range(0, k).ToArray(),
            Rows = Enumerable.Range(0, k).Select(i => (uint)i).ToArray(),
            MaxTokens = options.MaxTokens,
            Sampling = options.Sampling,
            Seed = options.Seed,
            Request = options.RequestId,
        };
        var decoders = new ITextDecoder[k];
        var texts = new System.Text.StringBuilder[k];
        for (int i = 0; i < k; i++)
        {
            decoders[i] = _model.CreateTextDecoder();
            texts[i] = new System.Text.StringBuilder();
        }

        int generated = 0;
        var events = new List<GenerationEvent>(2 * k);
        foreach (int _ in rollout.Run(settings, startLogits, startHidden))
        {
            events.Clear();
            foreach (int c in rollout.StepCandidates)
            {
                var tokens = rollout.Tokens[c];
                int token = tokens[^1];
                string delta = decoders[c].Push(token);
                texts[c].Append(delta);
                generated++;
                events.Add(new TokenGenerated(c, token, delta, rollout.LastTokenLogProb[c]));
                if (rollout.Stopped[c] || tokens.Count >= options.MaxTokens)
                {
                    texts[c].Append(decoders[c].Flush());
                    events.Add(new SampleFinished(new GeneratedSample(c, tokens.ToArray(), texts[c].ToString(),
                        rollout.LogProb[c], rollout.SamplerLogProb[c], rollout.Stopped[c] ? FinishReason.Eos : FinishReason.Length)));
                }
            }
            foreach (var e in events) yield return e;
            cancellationToken.ThrowIfCancellationRequested();
        }

        yield return new GenerationCompleted(new GenerationTimings(promptTokens.Length, prefillTime, clock.Elapsed - prefillTime,
            rollout.DecodeCalls, generated) { ModelTime = rollout.DecodeTime });
    }
}
