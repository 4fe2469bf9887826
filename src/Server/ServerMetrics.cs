using Prometheus;
using Tilt.Engine.Requests;

namespace Tilt.Server;

/// <summary>
/// The server's Prometheus metrics (prometheus-net), in a registry of its own so several servers can share a process.
/// Series of one model's engine and outputs carry a <c>model</c> label (the served id); requests by route do not, since
/// many are refused before a model is chosen.
/// </summary>
internal sealed class ServerMetrics
{
    public ServerMetrics(Func<ServedModels?> models)
    {
        Registry = Metrics.NewCustomRegistry();
        var f = Metrics.WithCustomRegistry(Registry);
        Requests = f.CreateCounter("tilt_requests_total", "HTTP requests by route and outcome (ok, bad_request, unauthorized, not_found, too_large, busy, cancelled, error).",
            new CounterConfiguration { LabelNames = ["route", "outcome"] });
        var byModel = new GaugeConfiguration { LabelNames = ["model"] };
        QueueDepth = f.CreateGauge("tilt_queue_depth", "Requests waiting for the engine.", byModel);
        RunningRequests = f.CreateGauge("tilt_running_requests", "Requests the engine has admitted.", byModel);
        LiveSequences = f.CreateGauge("tilt_live_sequences", "Sequences in use over all admitted requests.", byModel);
        MaxSequences = f.CreateGauge("tilt_max_sequences", "The engine's capacity in sequences.", byModel);
        Decodes = f.CreateGauge("tilt_decodes", "Batched decodes the engine ran (a counter read from the engine).", byModel);
        DecodeRuns = f.CreateGauge("tilt_decode_id_runs", "Runs of consecutive sequence ids summed over the decodes: llama.cpp evaluates each run as its own " +
            "micro-batch with the per-sequence KV layout, so tilt_decode_id_runs / tilt_decodes near 1 is healthy (a counter read from the engine).", byModel);
        SequenceMoves = f.CreateGauge("tilt_sequence_moves", "Sequences moved to keep decoded ids dense, one KV copy each (a counter read from the engine).", byModel);
        TokensGenerated = f.CreateCounter("tilt_tokens_generated_total", "Tokens returned to clients.", new CounterConfiguration { LabelNames = ["model", "strategy"] });
        TokensRejected = f.CreateCounter("tilt_tokens_rejected_total", "Tokens decoded for candidates that were not returned (tokens evaluated minus tokens returned).",
            new CounterConfiguration { LabelNames = ["model", "strategy"] });
        Reward = f.CreateHistogram("tilt_reward", "Reward r(x, y) of returned outputs.",
            new HistogramConfiguration { LabelNames = ["model", "strategy"], Buckets = [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5] });
        Kl = f.CreateHistogram("tilt_kl", "KL(pi || p) reported for returned outputs (nats, by the strategy's method).",
            new HistogramConfiguration { LabelNames = ["model", "strategy"], Buckets = [0, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32] });
        StepLatency = f.CreateHistogram("tilt_step_latency_seconds", "Mean time of one batched decode step of an output (decode time after the prefill over the decode calls).",
            new HistogramConfiguration { LabelNames = ["model"], Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16) });
        TimeToFirstText = f.CreateHistogram("tilt_time_to_first_text_seconds", "From a request's arrival to its first text (streaming) or to the engine's first accepted text.",
            new HistogramConfiguration { LabelNames = ["model"], Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        RequestDuration = f.CreateHistogram("tilt_request_duration_seconds", "From a generation request's arrival to its last byte.",
            new HistogramConfiguration { LabelNames = ["route"], Buckets = Histogram.ExponentialBuckets(0.001, 2, 18) });
        Registry.AddBeforeCollectCallback(() =>
        {
            if (models() is not { } served) return;
            foreach (var m in served.All)
            {
                if (m.Engine.Status is not { } s) continue; // stopped and released
                QueueDepth.WithLabels(m.Id).Set(s.QueuedRequests);
                RunningRequests.WithLabels(m.Id).Set(s.RunningRequests);
                LiveSequences.WithLabels(m.Id).Set(s.LiveSequences);
                MaxSequences.WithLabels(m.Id).Set(s.MaxSequences);
                Decodes.WithLabels(m.Id).Set(s.Decodes);
                DecodeRuns.WithLabels(m.Id).Set(s.DecodeRuns);
                SequenceMoves.WithLabels(m.Id).Set(s.SequenceMoves);
            }
        });
    }

    public CollectorRegistry Registry { get; }
    public Counter Requests { get; }
    public Gauge QueueDepth { get; }
    public Gauge RunningRequests { get; }
    public Gauge LiveSequences { get; }
    public Gauge MaxSequences { get; }
    public Gauge Decodes { get; }
    public Gauge DecodeRuns { get; }
    public Gauge SequenceMoves { get; }
    public Counter TokensGenerated { get; }
    public Counter TokensRejected { get; }
    public Histogram Reward { get; }
    public Histogram Kl { get; }
    public Histogram StepLatency { get; }
    public Histogram TimeToFirstText { get; }
    public Histogram RequestDuration { get; }

    /// <summary>Records one returned output of the model <paramref name="model"/> (its served id).</summary>
    public void Record(string model, string strategy, AlignedSample s)
    {
        TokensGenerated.WithLabels(model, strategy).Inc(s.Tokens.Count);
        TokensRejected.WithLabels(model, strategy).Inc(Math.Max(0, s.TokensEvaluated - s.Tokens.Count));
        if (double.IsFinite(s.Reward)) Reward.WithLabels(model, strategy).Observe(s.Reward);
        if (double.IsFinite(s.Kl.Value)) Kl.WithLabels(model, strategy).Observe(s.Kl.Value);
        if (s.Timings.DecodeCalls > 0) StepLatency.WithLabels(model).Observe(s.Timings.PerStep.TotalSeconds);
    }
}
