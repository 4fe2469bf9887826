using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Interop;

/// <summary>
/// tilt_request_options -> the engine's option records. The engine's init accessors do the validation; their
/// messages are re-labelled with the C field name. Only the fields the chosen strategy reads are checked.
/// </summary>
internal static class RequestOptionsMapping
{
    /// <summary>The C names of the engine option properties whose own checks can refuse a value (the shared decoding fields).</summary>
    private static readonly Dictionary<string, string> CFieldNames = new(StringComparer.Ordinal)
    {
        ["Samples"] = "samples",
        ["MaxTokens"] = "max_tokens",
        ["Temperature"] = "temperature",
        ["TopK"] = "top_k",
        ["TopP"] = "top_p",
        ["TopLogprobs"] = "top_logprobs",
        ["Continuation"] = "continuation",
    };

    /// <summary>The C member of a strategy catalogue field (<see cref="StrategyFields"/>) where its name differs.</summary>
    private static string CMember(string field) => field switch
    {
        StrategyFields.Block => "block_size",
        StrategyFields.TopK => "tokenwise_top_k",
        _ => field,
    };

    /// <summary>
    /// The stop strings and stop token ids (API 1.2), copied out of the caller's memory; null when there are none.
    /// </summary>
    public static unsafe StopSequences? ReadStop(in TiltRequestOptions o)
    {
        if (o.Reserved2 != 0) throw StatusException.InvalidArgument($"tilt_request_options.reserved2 must be 0, got {o.Reserved2}");
        if (o.NStop is < 0 or > StopSequences.MaxStrings)
            throw StatusException.InvalidArgument($"tilt_request_options.n_stop must be 0..{StopSequences.MaxStrings}, got {o.NStop}");
        if (o.NStopTokenIds is < 0 or > StopSequences.MaxTokenIds)
            throw StatusException.InvalidArgument($"tilt_request_options.n_stop_token_ids must be 0..{StopSequences.MaxTokenIds}, got {o.NStopTokenIds}");
        if (o.NStop > 0 && o.Stop == null) throw StatusException.InvalidArgument($"tilt_request_options.stop is NULL but n_stop is {o.NStop}");
        if (o.NStopTokenIds > 0 && o.StopTokenIds == null)
            throw StatusException.InvalidArgument($"tilt_request_options.stop_token_ids is NULL but n_stop_token_ids is {o.NStopTokenIds}");
        if (o.NStop == 0 && o.NStopTokenIds == 0) return null;
        var strings = new string[o.NStop];
        for (int i = 0; i < strings.Length; i++) strings[i] = Utf8.Read(o.Stop[i], $"tilt_request_options.stop[{i}]");
        var ids = new ReadOnlySpan<int>(o.StopTokenIds, o.NStopTokenIds).ToArray();
        try
        {
            return new StopSequences { Strings = strings, TokenIds = ids, IncludeStop = o.IncludeStop != 0 };
        }
        catch (ArgumentOutOfRangeException e)
        {
            string field = e.ParamName == nameof(StopSequences.TokenIds) ? "stop_token_ids" : "stop";
            throw StatusException.InvalidArgument($"tilt_request_options.{field}: {e.Message.Split(" (Parameter", 2)[0]}");
        }
    }

    public static Strategy ReadStrategy(in TiltRequestOptions o) =>
        o.Reserved != 0 ? throw StatusException.InvalidArgument($"tilt_request_options.reserved must be 0, got {o.Reserved}") :
        o.Reserved3 != 0 ? throw StatusException.InvalidArgument($"tilt_request_options.reserved3 must be 0, got {o.Reserved3}") :
        o.Strategy is >= (int)Strategy.Sample and <= (int)Strategy.Beam
            ? (Strategy)o.Strategy
            : throw StatusException.InvalidArgument($"tilt_request_options.strategy must be a tilt_strategy (0..7), got {o.Strategy}");

    /// <summary>The per-token log-probabilities a request asked for (API 1.3): whether, and how many alternatives.</summary>
    public static (bool Logprobs, int Top) ReadLogprobs(in TiltRequestOptions o, Strategy strategy)
    {
        if (o.TopLogprobs is < 0 or > Tilt.Kernels.TopLogProbs.MaxN)
            throw StatusException.InvalidArgument($"tilt_request_options.top_logprobs must be 0..{Tilt.Kernels.TopLogProbs.MaxN}, got {o.TopLogprobs}");
        return (o.Logprobs != 0 || o.TopLogprobs > 0 || strategy == Strategy.Score, o.TopLogprobs);
    }

    /// <summary>TILT_STRATEGY_SCORE: the continuation to teacher-force (API 1.3); the other strategies must leave it NULL.</summary>
    public static unsafe ScoringOptions? ToScoring(in TiltRequestOptions o, Strategy strategy)
    {
        if (strategy != Strategy.Score)
        {
            if (o.Continuation != null)
                throw StatusException.InvalidArgument("tilt_request_options.continuation is only for TILT_STRATEGY_SCORE; leave it NULL");
            return null;
        }
        if (o.Continuation == null) throw StatusException.InvalidArgument("tilt_request_options.continuation is NULL; TILT_STRATEGY_SCORE scores that text");
        _ = ReadThreads(o); // checked with the other fields; the request handle keeps the value
        string text = Utf8.Read(o.Continuation, "tilt_request_options.continuation");
        int top = o.TopLogprobs;
        return Relabel(() => new ScoringOptions { Continuation = text, TopLogprobs = top });
    }

    /// <summary>Options of an aligned strategy, through the strategy catalogue (only the fields the strategy reads are checked).</summary>
    public static AlignOptions ToAligned(TiltRequestOptions o, Strategy strategy)
    {
        _ = ReadThreads(o); // checked with the other fields; the request handle keeps the value (threads are the context's)
        if (o.DeadlineMs < 0)
            throw StatusException.InvalidArgument($"tilt_request_options.deadline_ms must be >= 0 (0 = none), got {o.DeadlineMs}");
        if (strategy == Strategy.Blockwise && o.Selection is not (0 or 1))
            throw StatusException.InvalidArgument($"tilt_request_options.selection must be a tilt_selection (0 or 1), got {o.Selection}");
        var spec = new StrategySpec
        {
            Strategy = strategy switch
            {
                Strategy.BestOfN => DecodingStrategy.BestOfN,
                Strategy.SoftBestOfN => DecodingStrategy.SoftBestOfN,
                Strategy.Tokenwise => DecodingStrategy.Tokenwise,
                Strategy.Blockwise => DecodingStrategy.Blockwise,
                Strategy.Rejection => DecodingStrategy.Rejection,
                Strategy.Beam => DecodingStrategy.Beam,
                _ => throw new ArgumentOutOfRangeException(nameof(strategy), strategy, "not an aligned strategy"),
            },
            N = o.N, K = o.K, Block = o.BlockSize, TopK = o.TokenwiseTopK, Beta = o.Beta, Alpha = o.Alpha, Every = o.Every, Lambda = o.Lambda, Beams = o.Beams,
            Selection = o.Selection == 1 ? BlockSelectionMode.Sample : BlockSelectionMode.Argmax,
            Samples = o.Samples,
            DeadlineMs = o.DeadlineMs > 0 ? o.DeadlineMs : null,
        };
        return Relabel(() => WithShared(spec.Build(new StrategyLimits { MaxTokens = o.MaxTokens }), o));
    }

    /// <summary>Options of plain sampling.</summary>
    public static GenerationOptions ToGeneration(TiltRequestOptions o)
    {
        _ = ReadThreads(o); // checked with the other fields; the request handle keeps the value
        if (o.DeadlineMs != 0)
            throw StatusException.InvalidArgument(
                $"tilt_request_options.deadline_ms must be 0 for TILT_STRATEGY_SAMPLE (deadlines belong to the aligned strategies), got {o.DeadlineMs}");
        return Relabel(() => WithShared(new GenerationOptions { Samples = o.Samples }, o));
    }

    /// <summary>The members every decoding strategy reads: length, seed, sampling, log-probabilities.</summary>
    private static T WithShared<T>(T options, in TiltRequestOptions o) where T : DecodingOptions => options with
    {
        MaxTokens = o.MaxTokens,
        Seed = o.Seed,
        RequestId = o.RequestId,
        Sampling = new SamplingParameters(o.Temperature, o.TopK, o.TopP),
        Logprobs = o.Logprobs != 0 || o.TopLogprobs > 0,
        TopLogprobs = o.TopLogprobs,
    };

    /// <summary>
    /// The request's llama.cpp threads (0 = the model's engine's). Threads are the context's, not a request's: a request that
    /// asks for other threads than its model's engine runs on an engine of its own.
    /// </summary>
    public static int? ReadThreads(in TiltRequestOptions o) => o.Threads switch
    {
        0 => null,
        > 0 => o.Threads,
        _ => throw StatusException.InvalidArgument($"tilt_request_options.threads must be >= 0 (0 = the engine's default: one per physical core), got {o.Threads}"),
    };

    private static T Relabel<T>(Func<T> build)
    {
        try
        {
            return build();
        }
        catch (StrategyFieldException e)
        {
            throw StatusException.InvalidArgument(e.MessageFor($"tilt_request_options.{CMember(e.Field)}"));
        }
        catch (ArgumentException e)
        {
            string field = e.ParamName is { } name && CFieldNames.TryGetValue(name, out var c) ? c : e.ParamName ?? "?";
            throw StatusException.InvalidArgument($"tilt_request_options.{field}: {Headline(e)}");
        }
    }

    /// <summary>The message without the " (Parameter 'X')" and "Actual value was" lines the runtime appends.</summary>
    private static string Headline(ArgumentException e)
    {
        string message = e.Message;
        int cut = message.IndexOf(" (Parameter '", StringComparison.Ordinal);
        if (cut >= 0) message = message[..cut];
        int line = message.IndexOfAny(['\r', '\n']);
        return line >= 0 ? message[..line] : message;
    }
}
