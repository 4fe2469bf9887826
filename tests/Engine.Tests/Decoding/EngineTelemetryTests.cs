using System.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Tilt.Engine.Decoding;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>
/// The engine's meter and activity source through the OpenTelemetry SDK's in-memory exporter: GenAI convention names and
/// tags, the engine's own tilt.* instruments, one span per request with its events. Other tests run engines at the same
/// time, so everything here is filtered by a model name of this test's own.
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class EngineTelemetryTests(SharedModel shared) : IDisposable
{
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly string _name = $"telemetry-{Guid.NewGuid():N}";

    public void Dispose() => _kernels.Dispose();

    private DecodingEngine Engine() => new(shared.Model, _kernels, new EngineOptions { MaxSequences = 8, MaxSequenceLength = 64, ModelName = _name });

    private bool Ours(IEnumerable<KeyValuePair<string, object?>> tags) => tags.Any(t => t.Key == "gen_ai.request.model" && Equals(t.Value, _name));

    private static List<KeyValuePair<string, object?>> Tags(MetricPoint point)
    {
        var tags = new List<KeyValuePair<string, object?>>();
        foreach (var t in point.Tags) tags.Add(t);
        return tags;
    }

    private List<(MetricPoint Point, List<KeyValuePair<string, object?>> Tags)> Points(List<MetricSnapshot> metrics, string name) =>
        [.. metrics.Where(m => m.Name == name).SelectMany(m => m.MetricPoints).Select(p => (p, Tags(p))).Where(x => Ours(x.Item2))];

    [Fact]
    public async Task A_best_of_n_request_records_gen_ai_and_tilt_metrics_and_one_span_with_its_events()
    {
        var metrics = new List<MetricSnapshot>();
        var spans = new List<Activity>();
        using var meters = Sdk.CreateMeterProviderBuilder().AddMeter(EngineTelemetry.Name).AddInMemoryExporter(metrics).Build();
        using var traces = Sdk.CreateTracerProviderBuilder().AddSource(EngineTelemetry.Name).AddInMemoryExporter(spans).Build();

        AlignedSample sample;
        using (var engine = Engine())
        {
            sample = (await engine.RunAsync(new DecodingRequest
            {
                Prompt = "Once upon a time",
                Options = new BestOfNOptions { N = 4, MaxTokens = 12, Seed = 1 },
                Reward = LexiconReward.LoadBuiltIn(LexiconReward.Sentiment),
            }))[0];
            meters.ForceFlush();  // while the engine lives, so its gauges report
        }
        traces.ForceFlush();

        var usage = Points(metrics, "gen_ai.client.token.usage");
        Assert.Equal(2, usage.Count);
        var input = Assert.Single(usage, u => u.Tags.Contains(new("gen_ai.token.type", "input")));
        var output = Assert.Single(usage, u => u.Tags.Contains(new("gen_ai.token.type", "output")));
        Assert.Equal(sample.PromptTokens, input.Point.GetHistogramSum());
        Assert.Equal(sample.Tokens.Count, output.Point.GetHistogramSum());
        Assert.Contains(new("gen_ai.operation.name", "text_completion"), input.Tags);
        Assert.Contains(new("tilt.strategy", "best_of_n"), input.Tags);

        foreach (string name in new[] { "gen_ai.server.request.duration", "gen_ai.server.time_to_first_token", "gen_ai.server.time_per_output_token" })
        {
            var point = Assert.Single(Points(metrics, name)).Point;
            Assert.Equal(1, point.GetHistogramCount());
            Assert.True(point.GetHistogramSum() > 0, name);
        }
        Assert.True(Points(metrics, "gen_ai.server.time_to_first_token")[0].Point.GetHistogramSum()
            <= Points(metrics, "gen_ai.server.request.duration")[0].Point.GetHistogramSum());

        var reward = Assert.Single(Points(metrics, "tilt.reward")).Point;
        Assert.Equal(sample.Reward, reward.GetHistogramSum());
        var kl = Assert.Single(Points(metrics, "tilt.kl"));
        Assert.Contains(new("tilt.kl.method", "best_of_n_estimate"), kl.Tags);
        Assert.Equal(sample.Kl.Value, kl.Point.GetHistogramSum(), 1e-12);
        Assert.Equal((double)sample.TokensEvaluated / sample.Tokens.Count,
            Assert.Single(Points(metrics, "tilt.tokens_evaluated_per_output_token")).Point.GetHistogramSum(), 1e-12);

        // Per decode: 4 rows (the candidates), in one run of consecutive ids.
        var rows = Assert.Single(Points(metrics, "tilt.decode.rows")).Point;
        Assert.True(rows.GetHistogramCount() >= 1);
        Assert.True(rows.GetHistogramSum() <= 4 * rows.GetHistogramCount());
        var runs = Assert.Single(Points(metrics, "tilt.decode.id_runs")).Point;
        Assert.Equal(rows.GetHistogramCount(), runs.GetHistogramCount());
        Assert.Equal(runs.GetHistogramSum(), Assert.Single(Points(metrics, "tilt.decode.id_runs.total")).Point.GetSumLong());
        Assert.Equal(0, Assert.Single(Points(metrics, "tilt.queue.depth")).Point.GetGaugeLastValueLong());
        Assert.Equal(8, Assert.Single(Points(metrics, "tilt.sequences.max")).Point.GetGaugeLastValueLong());
        Assert.Single(Points(metrics, "tilt.sequences.live"));

        var span = Assert.Single(spans, s => Equals(s.GetTagItem("gen_ai.request.model"), _name));
        Assert.Equal($"text_completion {_name}", span.DisplayName);
        Assert.Equal("best_of_n", span.GetTagItem("tilt.strategy"));
        Assert.Equal((long)sample.Tokens.Count, Convert.ToInt64(span.GetTagItem("gen_ai.usage.output_tokens")));
        Assert.Equal(["tilt.admitted", "tilt.prefill", "tilt.reward_scored", "tilt.first_text", "tilt.finish"], span.Events.Select(e => e.Name));
        Assert.Equal(ActivityStatusCode.Unset, span.Status);
        var finish = span.Events.Last().Tags.ToDictionary();
        Assert.Equal(sample.Reward, finish["tilt.reward"]);
        Assert.Equal("best_of_n_estimate", finish["tilt.kl.method"]);
    }

    [Fact]
    public async Task A_request_left_mid_stream_ends_its_span_as_cancelled()
    {
        var metrics = new List<MetricSnapshot>();
        var spans = new List<Activity>();
        using var meters = Sdk.CreateMeterProviderBuilder().AddMeter(EngineTelemetry.Name).AddInMemoryExporter(metrics).Build();
        using var traces = Sdk.CreateTracerProviderBuilder().AddSource(EngineTelemetry.Name).AddInMemoryExporter(spans).Build();
        using (var engine = Engine())
        {
            await foreach (var e in engine.StreamAsync(new DecodingRequest { Prompt = "One day", Options = new GenerationOptions { MaxTokens = 40, Seed = 2 } }))
            {
                if (e is TextAccepted) break;
            }
        }
        meters.ForceFlush();
        traces.ForceFlush();

        var span = Assert.Single(spans, s => Equals(s.GetTagItem("gen_ai.request.model"), _name));
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal("cancelled", span.GetTagItem("error.type"));
        Assert.Contains(Points(metrics, "gen_ai.server.request.duration"), p => p.Tags.Contains(new("error.type", "cancelled")));
        Assert.Empty(Points(metrics, "gen_ai.client.token.usage"));
    }
}
