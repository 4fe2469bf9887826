using System.Diagnostics;
using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
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
        int vocab = _model.Info.VocabularySize;
        var info = _model.Info;

        using var session = _model.CreateSession(new SessionOptions
        {
            MaxSequences = k,
            MaxSequenceLength = promptTokens.Length + options.MaxTokens,
            Threads = options.Threads,
            KvCacheType = options.KvCacheType,
        });
        session.Prefill(0, promptTokens);
        // Step 0: every sample starts from the prompt's logits; fork the cache and replicate the row.
        var firstLogits = new float[k * vocab]; // [K, vocab]
        for (int i = 0; i < k; i++) session.Logits.CopyTo(firstLogits.AsSpan(i * vocab, vocab));
        for (int i = 1; i < k; i++) session.CopySequence(0, i);
        var prefillTime = clock.Elapsed;

        var parameters = new SamplingParameters[k];
        Array.Fill(parameters, options.Sampling);
        var keys = new RngKey[k];
        var sampled = new int[k];
        var baseLogProb = new float[k];
        var samplerLogProb = new float[k];
        var active = new int[k];          // sequence ids still generating, in batch order
        var nextActive = new int[k];
        var nextTokens = new int[k];
        for (int i = 0; i < k; i++) active[i] = i;
        int activeCount = k;

        var tokens = new List<int>[k];
        var logProb = new double[k];
        var samplerLp = new double[k];
        var decoders = new ITextDecoder[k];
        var texts = new System.Text.StringBuilder[k];
        for (int i = 0; i < k; i++)
        {
            tokens[i] = new List<int>(Math.Min(options.MaxTokens, 1024));
            decoders[i] = _model.CreateTextDecoder();
            texts[i] = new System.Text.StringBuilder();
        }

        int steps = 0, generated = 0;
        for (int t = 0; activeCount > 0; t++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ReadOnlySpan<float> logits = t == 0 ? firstLogits : session.Logits;
            for (int r = 0; r < activeCount; r++) keys[r] = new RngKey(options.Seed, options.RequestId, (uint)t, (uint)active[r]);
            _kernels.SampleBase(logits, activeCount, vocab, parameters, keys, sampled, baseLogProb, samplerLogProb);

            int stillActive = 0;
            var finished = new List<GeneratedSample>();
            var events = new List<GenerationEvent>(activeCount);
            for (int r = 0; r < activeCount; r++)
            {
                int s = active[r], token = sampled[r];
                tokens[s].Add(token);
                logProb[s] += baseLogProb[r];
                samplerLp[s] += samplerLogProb[r];
                generated++;
                string delta = decoders[s].Push(token);
                texts[s].Append(delta);
                events.Add(new TokenGenerated(s, token, delta, baseLogProb[r]));
                bool atEos = info.IsStop(token);
                if (atEos || tokens[s].Count >= options.MaxTokens)
                {
                    texts[s].Append(decoders[s].Flush());
                    finished.Add(new GeneratedSample(s, tokens[s].ToArray(), texts[s].ToString(), logProb[s], samplerLp[s],
                        atEos ? FinishReason.Eos : FinishReason.Length));
                    session.RemoveSequence(s);
                }
                else
                {
                    nextActive[stillActive] = s;
                    nextTokens[stillActive] = token;
                    stillActive++;
                }
            }

            foreach (var e in events) yield return e;
            foreach (var f in finished) yield return new SampleFinished(f);

            (active, nextActive) = (nextActive, active);
            activeCount = stillActive;
            if (activeCount > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                session.Step(active.AsSpan(0, activeCount), nextTokens.AsSpan(0, activeCount));
                steps++;
            }
        }

        yield return new GenerationCompleted(new GenerationTimings(promptTokens.Length, prefillTime, clock.Elapsed - prefillTime, steps, generated));
    }
}
