using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
using Tilt.Engine.Sampling;
using Tilt.Engine.Strategies;
using Tilt.Kernels;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Runs one request on an engine of its own, sized exactly for it: what the per-strategy classes
/// (<see cref="BaseSampler"/>, <see cref="BestOfNSampler"/>, <see cref="TokenwiseDecoder"/>, <see cref="BlockwiseDecoder"/>)
/// do, so that their API keeps working on the same step functions the shared engine runs. Services should share one
/// <see cref="DecodingEngine"/> per model instead: that is what batches concurrent requests.
/// </summary>
internal static class SingleRequest
{
    public static async IAsyncEnumerable<AlignEvent> StreamAsync(ILanguageModel model, IStepKernels kernels, DecodingRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        await Task.Yield(); // never run a request inside the caller's synchronous call
        var options = request.Options;
        int promptTokens = model.Tokenize(request.Prompt).Length
            + (string.IsNullOrEmpty(request.ForcedPrefix) ? 0 : model.Tokenize(request.ForcedPrefix, addBos: false).Length);
        PromptLimits.Check(model.Info, promptTokens, options.MaxTokens);
        int vocab = model.Info.VocabularySize;
        (int sequences, KvLayout layout) = options switch
        {
            GenerationOptions g => (g.Samples, KvLayout.PerSequence),
            BestOfNOptions b => (b.N, KvLayout.PerSequence),
            RejectionOptions r => (r.N, KvLayout.PerSequence),
            // Controlled decoding forks one prefix again and again: in a shared pool a fork only re-tags cells.
            TokenwiseOptions t => (Math.Min(t.Candidates == 0 ? vocab : Math.Min(t.Candidates, vocab), SessionOptions.MaxSupportedSequences - 1) + 1, KvLayout.Shared),
            BlockwiseOptions b => (b.K, KvLayout.Shared),
            ScoringOptions => (1, KvLayout.PerSequence),
            _ => throw new ArgumentException($"unsupported options type {options.GetType().Name}", nameof(request)),
        };
        // A scored text takes the place of generated tokens (its whole tokenization may differ by a few tokens from its own).
        int generated = options is ScoringOptions scoring ? model.Tokenize(scoring.Continuation, addBos: false).Length + 8 : options.MaxTokens;
        using var engine = new DecodingEngine(model, kernels, new EngineOptions
        {
            MaxSequences = sequences,
            MaxSequenceLength = promptTokens + generated + 2,
            MaxQueuedRequests = 1,
            PromptCacheEntries = 0,
            KvCacheType = options.KvCacheType,
            KvLayout = layout,
            Threads = options.Threads,
        });
        await foreach (var e in engine.StreamAsync(request, cancellationToken).ConfigureAwait(false))
            yield return e;
    }
}
