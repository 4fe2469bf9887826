using System.Diagnostics;
using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>One request on an engine of its own, sized by one rule: what one-off commands use.</summary>
public sealed partial class DecodingEngine
{
    /// <summary>
    /// Engine settings sized exactly for one request (its sequences, its prompt plus max tokens, its KV cache type and
    /// threads): what a one-off command uses. Token-wise and blockwise CD fork one prefix again and again, so they get the
    /// shared KV pool, where a fork only re-tags cells.
    /// </summary>
    public static EngineOptions OptionsFor(ILanguageModel model, DecodingRequest request)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        request.Validate(model.Info.VocabularySize);
        var options = request.Options;
        int promptTokens = (request.PromptTokens?.Count ?? model.Tokenize(request.Prompt).Length)
            + (string.IsNullOrEmpty(request.ForcedPrefix) ? 0 : model.Tokenize(request.ForcedPrefix, addBos: false).Length);
        PromptLimits.Check(model.Info, promptTokens, options.MaxTokens);
        // A scored text takes the place of generated tokens (its whole tokenization may differ by a few tokens from its own).
        int generated = options is ScoringOptions scoring ? model.Tokenize(scoring.Continuation, addBos: false).Length + 8 : options.MaxTokens;
        return new EngineOptions
        {
            MaxSequences = SequencesNeeded(options, model.Info.VocabularySize, SessionOptions.MaxSupportedSequences),
            MaxSequenceLength = promptTokens + generated + 2,
            MaxQueuedRequests = 1,
            PromptCacheEntries = 0,
            KvCacheType = options.KvCacheType,
            KvLayout = options is TokenwiseOptions or BlockwiseOptions or BeamOptions ? KvLayout.Shared : KvLayout.PerSequence,
            Threads = options.Threads,
        };
    }

    /// <summary>
    /// Runs one request on an engine of its own, sized by <see cref="OptionsFor"/> (one llama context for this request
    /// alone): for a one-off command, or a request a shared engine cannot serve. Sharing one engine is what batches
    /// concurrent requests.
    /// </summary>
    public static async IAsyncEnumerable<AlignEvent> StreamOnOwnEngine(ILanguageModel model, IStepKernels kernels, DecodingRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var options = OptionsFor(model, request);
        await Task.Yield(); // never run a request inside the caller's synchronous call
        using var engine = new DecodingEngine(model, kernels, options);
        await foreach (var e in engine.StreamAsync(request, cancellationToken).ConfigureAwait(false))
            yield return e;
    }

    /// <summary>All outputs of one request run on an engine of its own (<see cref="StreamOnOwnEngine"/>), in sample order.</summary>
    public static async Task<IReadOnlyList<AlignedSample>> RunOnOwnEngineAsync(ILanguageModel model, IStepKernels kernels, DecodingRequest request,
        CancellationToken cancellationToken = default)
    {
        var options = OptionsFor(model, request);
        using var engine = new DecodingEngine(model, kernels, options);
        return await engine.RunAsync(request, cancellationToken).ConfigureAwait(false);
    }
}
