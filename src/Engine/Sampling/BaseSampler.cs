using System.Runtime.CompilerServices;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Strategies;
using Tilt.Kernels;

namespace Tilt.Engine.Sampling;

/// <summary>
/// Samples K continuations of a prompt from the base model in one batch: prefill once, fork the KV cache to K sequences,
/// then one decode call and one batched sampling call per step. Sample i draws its noise from the RNG row i, so it is the
/// same text whatever K, the thread count or the backend. Each call runs on an engine of its own; a service shares one
/// <see cref="DecodingEngine"/> per model (plain generation is <see cref="GenerationOptions"/> in a <see cref="DecodingRequest"/>).
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
        var request = new DecodingRequest { Prompt = prompt, Options = options };
        int generated = 0, steps = 0, promptTokens = 0;
        TimeSpan prefill = TimeSpan.Zero, total = TimeSpan.Zero, model = TimeSpan.Zero;
        await foreach (var e in SingleRequest.StreamAsync(_model, _kernels, request, cancellationToken).ConfigureAwait(false))
        {
            switch (e)
            {
                case TextAccepted { Tokens.Count: 0 }:
                    break;
                case TextAccepted t:
                    generated++;
                    yield return new TokenGenerated(t.Sample, t.Tokens[0], t.TextDelta, (float)t.LogProb);
                    break;
                case SampleCompleted { Result: var s }:
                    prefill = s.Timings.Prefill;
                    total = s.Timings.Total > total ? s.Timings.Total : total;
                    model = s.Timings.ModelTime;
                    promptTokens = s.PromptTokens;
                    steps = Math.Max(steps, s.Tokens.Count);
                    yield return new SampleFinished(new GeneratedSample(s.Index, s.Tokens, s.Text, s.LogProb, s.SamplerLogProb,
                        s.Finish switch
                        {
                            AlignFinish.Eos => FinishReason.Eos,
                            AlignFinish.Stop => FinishReason.Stop,
                            _ => FinishReason.Length,
                        }) { TokenLogProbs = s.TokenLogProbs });
                    break;
            }
        }
        // Decode calls after the prefill: one per step but the first (which samples from the prompt's logits).
        yield return new GenerationCompleted(new GenerationTimings(promptTokens, prefill, total - prefill, Math.Max(0, steps - 1), generated) { ModelTime = model });
    }
}
