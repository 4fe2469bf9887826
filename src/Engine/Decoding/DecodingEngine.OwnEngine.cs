using System.Runtime.CompilerServices;
using Tilt.Engine.Models;
using Tilt.Engine.Requests;
using Tilt.Kernels;

namespace Tilt.Engine.Decoding;

/// <summary>
/// The engine-level settings a one-off engine takes from its caller: llama.cpp's CPU threads and the KV cache type. They are
/// the context's, never a request's (a shared engine has one of each).
/// </summary>
/// <param name="Threads">CPU threads, 1..the logical CPUs; null = <see cref="CpuTopology.DefaultThreads"/>.</param>
/// <param name="KvCacheType">KV cache element type.</param>
public sealed record ContextSettings(int? Threads = null, KvCacheType KvCacheType = KvCacheType.F16)
{
    /// <summary>The default threads and an F16 KV cache.</summary>
    public static ContextSettings Default { get; } = new();
}

/// <summary>One request on an engine of its own, sized by one rule: what one-off commands use.</summary>
public sealed partial class DecodingEngine
{
    /// <summary>
    /// Engine settings sized exactly for one request (its sequences, its prompt plus max tokens), with the caller's threads and
    /// KV cache type: what a one-off command uses. Token-wise and blockwise CD fork one prefix again and again, so they get the
    /// shared KV pool, where a fork only re-tags cells.
    /// </summary>
    public static EngineOptions OptionsFor(ILanguageModel model, DecodingRequest request, ContextSettings? context = null)
    {
        context ??= ContextSettings.Default;
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
            KvCacheType = context.KvCacheType,
            KvLayout = options is TokenwiseOptions or BlockwiseOptions or BeamOptions ? KvLayout.Shared : KvLayout.PerSequence,
            Threads = context.Threads,
        };
    }

    /// <summary>
    /// Runs one request on an engine of its own, sized by <see cref="OptionsFor"/> (one llama context for this request
    /// alone): for a one-off command, or a request a shared engine cannot serve. Sharing one engine is what batches
    /// concurrent requests.
    /// </summary>
    public static async IAsyncEnumerable<AlignEvent> StreamOnOwnEngine(ILanguageModel model, IStepKernels kernels, DecodingRequest request,
        ContextSettings? context = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var options = OptionsFor(model, request, context);
        await Task.Yield(); // never run a request inside the caller's synchronous call
        using var engine = new DecodingEngine(model, kernels, options);
        await foreach (var e in engine.StreamAsync(request, cancellationToken).ConfigureAwait(false))
            yield return e;
    }

    /// <summary>All outputs of one request run on an engine of its own (<see cref="StreamOnOwnEngine"/>), in sample order.</summary>
    public static async Task<IReadOnlyList<AlignedSample>> RunOnOwnEngineAsync(ILanguageModel model, IStepKernels kernels, DecodingRequest request,
        ContextSettings? context = null, CancellationToken cancellationToken = default)
    {
        var options = OptionsFor(model, request, context);
        using var engine = new DecodingEngine(model, kernels, options);
        return await engine.RunAsync(request, cancellationToken).ConfigureAwait(false);
    }
}
