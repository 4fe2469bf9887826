using System.Diagnostics;
using System.Diagnostics.Metrics;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// The engine's metrics and traces through System.Diagnostics (no OpenTelemetry dependency): export them with any
/// OpenTelemetry SDK by adding the meter and the activity source named <see cref="Name"/>
/// (<c>AddMeter("Tilt.Engine")</c>, <c>AddSource("Tilt.Engine")</c>). Names follow the OpenTelemetry GenAI semantic
/// conventions where one exists (<c>gen_ai.*</c>); the engine's own are under <c>tilt.*</c>. docs/serving.md lists them.
/// </summary>
public static class EngineTelemetry
{
    /// <summary>The meter's and the activity source's name.</summary>
    public const string Name = "Tilt.Engine";

    /// <summary>The value of <c>gen_ai.operation.name</c> for every request the engine runs.</summary>
    public const string Operation = "text_completion";

    internal static readonly ActivitySource Source = new(Name);
    internal static readonly Meter Meter = new(Name);

    // Weak: an engine that is never disposed must not be kept alive by its gauges.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<DecodingEngine, object?> Engines = new();

    // GenAI semantic conventions (server side; token usage as the client-side name, which the conventions share).
    internal static readonly Histogram<long> TokenUsage = Meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}",
        "Tokens per request by gen_ai.token.type (input: the prompt; output: the returned tokens).",
        advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536] });

    internal static readonly Histogram<double> RequestDuration = Meter.CreateHistogram<double>("gen_ai.server.request.duration", "s",
        "From a request's submission to its last output.", advice: Seconds());

    internal static readonly Histogram<double> TimeToFirstToken = Meter.CreateHistogram<double>("gen_ai.server.time_to_first_token", "s",
        "From a request's submission to its first accepted text (a token, a block, or best-of-n's winner).", advice: Seconds());

    internal static readonly Histogram<double> TimePerOutputToken = Meter.CreateHistogram<double>("gen_ai.server.time_per_output_token", "s",
        "After the first text: (duration - time to first token) / (output tokens - 1).", advice: Seconds());

    // The engine's own.
    internal static readonly Histogram<int> DecodeRows = Meter.CreateHistogram<int>("tilt.decode.rows", "{row}",
        "Rows (sequences) in one batched decode.", advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] });

    internal static readonly Histogram<int> DecodeIdRuns = Meter.CreateHistogram<int>("tilt.decode.id_runs", "{run}",
        "Runs of consecutive sequence ids in one decode (llama.cpp evaluates each as its own micro-batch; 1 is healthy).",
        advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 3, 4, 8, 16, 32] });

    internal static readonly Histogram<double> TokensEvaluatedPerOutputToken = Meter.CreateHistogram<double>(
        "tilt.tokens_evaluated_per_output_token", "{token}", "Tokens the model decoded for an output over the tokens returned (the compute cost of alignment).",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128] });

    internal static readonly Histogram<double> Reward = Meter.CreateHistogram<double>("tilt.reward", null,
        "Reward r(x, y) of returned outputs, by tilt.strategy.");

    internal static readonly Histogram<double> Kl = Meter.CreateHistogram<double>("tilt.kl", "nat",
        "KL(pi || p) reported for returned outputs, by tilt.strategy and tilt.kl.method.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0, 0.5, 1, 2, 4, 8, 15, 30, 100] });

    static EngineTelemetry()
    {
        Meter.CreateObservableGauge("tilt.queue.depth", () => Observe(s => s.QueuedRequests), "{request}", "Requests waiting for the engine.");
        Meter.CreateObservableGauge("tilt.requests.running", () => Observe(s => s.RunningRequests), "{request}", "Requests the engine has admitted.");
        Meter.CreateObservableGauge("tilt.sequences.live", () => Observe(s => s.LiveSequences), "{sequence}", "Sequences in use over all admitted requests.");
        Meter.CreateObservableGauge("tilt.sequences.max", () => Observe(s => s.MaxSequences), "{sequence}", "The engine's capacity in sequences.");
        Meter.CreateObservableCounter("tilt.decodes", () => Observe(s => s.Decodes), "{decode}", "Batched decodes so far (EngineStatus.Decodes).");
        Meter.CreateObservableCounter("tilt.decode.id_runs.total", () => Observe(s => s.DecodeRuns), "{run}",
            "Consecutive-id runs summed over the decodes (EngineStatus.DecodeRuns; over tilt.decodes: micro-batches per decode).");
        Meter.CreateObservableCounter("tilt.scoring.jobs", () => Observe(s => s.ScoringJobs), "{job}",
            "Reward scorings run beside the scheduler (EngineStatus.ScoringJobs).");
        Meter.CreateObservableCounter("tilt.scoring.parked", () => Observe(s => s.ScoringParked), "{job}",
            "Scorings the scheduler moved on without: their request waited alone (EngineStatus.ScoringParked).");
    }

    private static InstrumentAdvice<double> Seconds() => new()
    {
        HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    };

    internal static void Register(DecodingEngine engine) => Engines.AddOrUpdate(engine, null);

    internal static void Unregister(DecodingEngine engine) => Engines.Remove(engine);

    private static IEnumerable<Measurement<long>> Observe(Func<EngineStatus, long> read) =>
        Engines.Select(e => new Measurement<long>(read(e.Key.Status), new KeyValuePair<string, object?>("gen_ai.request.model", e.Key.ModelName))).ToArray();

    /// <summary>The span of one request: <c>text_completion MODEL</c>, tagged per the GenAI conventions; null when nobody listens.</summary>
    internal static Activity? StartRequest(string model, DecodingRequest request)
    {
        if (!Source.HasListeners()) return null;
        var previous = Activity.Current;
        var activity = Source.StartActivity($"{Operation} {model}", ActivityKind.Internal);
        // The request's span must not become the caller's current activity: StreamAsync is an iterator the caller drives.
        Activity.Current = previous;
        if (activity is null) return null;
        activity.SetTag("gen_ai.operation.name", Operation);
        activity.SetTag("gen_ai.provider.name", "tilt");
        activity.SetTag("gen_ai.request.model", model);
        activity.SetTag("gen_ai.request.max_tokens", request.Options.MaxTokens);
        activity.SetTag("gen_ai.request.seed", (long)request.Options.Seed);
        activity.SetTag("tilt.strategy", StrategyName(request.Strategy));
        return activity;
    }

    /// <summary>snake_case strategy names, as the HTTP API writes them (<c>best_of_n</c>, <c>tokenwise</c>, ...).</summary>
    internal static string StrategyName(DecodingStrategy strategy) => strategy switch
    {
        DecodingStrategy.Generate => "generate",
        DecodingStrategy.BestOfN => "best_of_n",
        DecodingStrategy.SoftBestOfN => "soft_best_of_n",
        DecodingStrategy.Tokenwise => "tokenwise",
        DecodingStrategy.Blockwise => "blockwise",
        DecodingStrategy.Rejection => "rejection",
        DecodingStrategy.Score => "score",
        _ => strategy.ToString(),
    };

    internal static string Snake<T>(T value) where T : struct, Enum =>
        System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());
}

/// <summary>What one request records while it streams: its span, first-text time, output tokens; metrics at its end.</summary>
internal sealed class RequestTelemetry(string model, DecodingRequest request, Activity? activity, Stopwatch clock)
{
    private readonly TagList _tags = new()
    {
        { "gen_ai.operation.name", EngineTelemetry.Operation },
        { "gen_ai.request.model", model },
        { "tilt.strategy", EngineTelemetry.StrategyName(request.Strategy) },
    };

    private TimeSpan? _firstText;
    private long _outputTokens;
    private int _promptTokens;

    public Activity? Activity => activity;

    public void Observe(AlignEvent e)
    {
        switch (e)
        {
            case TextAccepted when _firstText is null:
                _firstText = clock.Elapsed;
                EngineTelemetry.TimeToFirstToken.Record(_firstText.Value.TotalSeconds, _tags);
                activity?.AddEvent(new ActivityEvent("tilt.first_text"));
                break;
            case CandidatesScored scored:
                activity?.AddEvent(new ActivityEvent("tilt.reward_scored", tags: new ActivityTagsCollection
                {
                    ["tilt.candidates"] = scored.Scores.Count,
                    ["tilt.step"] = scored.Step,
                }));
                break;
            case SampleCompleted { Result: var s }:
                if (_firstText is null && s.Tokens.Count > 0)
                {
                    // Results only (RunAsync writes no text events): the output's own first-text time stands in.
                    _firstText = s.Timings.Queued + s.Timings.FirstAccepted;
                    EngineTelemetry.TimeToFirstToken.Record(_firstText.Value.TotalSeconds, _tags);
                    activity?.AddEvent(new ActivityEvent("tilt.first_text"));
                }
                _outputTokens += s.Tokens.Count;
                _promptTokens = s.PromptTokens;
                if (s.Tokens.Count > 0)
                    EngineTelemetry.TokensEvaluatedPerOutputToken.Record((double)s.TokensEvaluated / s.Tokens.Count, _tags);
                if (request.Strategy is not (DecodingStrategy.Generate or DecodingStrategy.Score) && double.IsFinite(s.Reward))
                    EngineTelemetry.Reward.Record(s.Reward, _tags);
                if (double.IsFinite(s.Kl.Value))
                {
                    var klTags = _tags;
                    klTags.Add("tilt.kl.method", EngineTelemetry.Snake(s.Kl.Method));
                    EngineTelemetry.Kl.Record(s.Kl.Value, klTags);
                }
                activity?.AddEvent(new ActivityEvent("tilt.finish", tags: new ActivityTagsCollection
                {
                    ["tilt.sample"] = s.Index,
                    ["gen_ai.response.finish_reason"] = EngineTelemetry.Snake(s.Finish),
                    ["tilt.reward"] = s.Reward,
                    ["tilt.kl"] = s.Kl.Value,
                    ["tilt.kl.method"] = EngineTelemetry.Snake(s.Kl.Method),
                    ["tilt.tokens_evaluated"] = s.TokensEvaluated,
                }));
                break;
        }
    }

    /// <summary>Ends the request: duration and token metrics, the span's usage tags and status (an error names its type).</summary>
    public void End(Exception? error)
    {
        var elapsed = clock.Elapsed;
        var tags = _tags;
        if (error is not null) tags.Add("error.type", error is OperationCanceledException ? "cancelled" : error.GetType().FullName);
        EngineTelemetry.RequestDuration.Record(elapsed.TotalSeconds, tags);
        if (error is null)
        {
            var input = _tags;
            input.Add("gen_ai.token.type", "input");
            EngineTelemetry.TokenUsage.Record(_promptTokens, input);
            var output = _tags;
            output.Add("gen_ai.token.type", "output");
            EngineTelemetry.TokenUsage.Record(_outputTokens, output);
            if (_firstText is { } first && _outputTokens > 1)
                EngineTelemetry.TimePerOutputToken.Record((elapsed - first).TotalSeconds / (_outputTokens - 1), _tags);
        }

        if (activity is null) return;
        activity.SetTag("gen_ai.usage.input_tokens", _promptTokens);
        activity.SetTag("gen_ai.usage.output_tokens", _outputTokens);
        if (error is not null)
        {
            activity.SetTag("error.type", error is OperationCanceledException ? "cancelled" : error.GetType().FullName);
            activity.SetStatus(ActivityStatusCode.Error, error.Message);
        }
        activity.Dispose();
    }
}
