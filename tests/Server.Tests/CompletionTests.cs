using System.Text.Json;
using Tilt.Engine.Decoding;
using Tilt.Engine.Requests;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Server.Tests;

public sealed class CompletionTests
{
    private const string Prompt = "Once upon a time";

    [Theory]
    [InlineData(Transport.Loopback)]
    [InlineData(Transport.InProcess)]
    public async Task Completion_has_OpenAI_shape_usage_and_is_reproducible_by_seed(Transport transport)
    {
        await using var host = await Host.StartAsync(transport);
        string request = $$"""{"model": "stories260K", "prompt": "{{Prompt}}", "max_tokens": 24, "seed": 7}""";
        var a = await host.PostJsonAsync("/v1/completions", request);
        var b = await host.PostJsonAsync("/v1/completions", request);
        var c = await host.PostJsonAsync("/v1/completions", request.Replace("\"seed\": 7", "\"seed\": 8"));

        Assert.Equal("text_completion", a.GetProperty("object").GetString());
        Assert.StartsWith("cmpl-", a.GetProperty("id").GetString());
        Assert.Equal("stories260K", a.GetProperty("model").GetString());
        var choice = a.GetProperty("choices").EnumerateArray().Single();
        string text = choice.GetProperty("text").GetString()!;
        Assert.NotEmpty(text);
        Assert.Contains(choice.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        Assert.Equal(text, b.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.NotEqual(text, c.GetProperty("choices")[0].GetProperty("text").GetString());

        // Usage: the prompt as the model tokenizes it (BOS included), the completion's tokens as generated.
        var usage = a.GetProperty("usage");
        int promptTokens = host.Model.Model.Tokenize(Prompt).Length;
        Assert.Equal(promptTokens, usage.GetProperty("prompt_tokens").GetInt32());
        int completion = usage.GetProperty("completion_tokens").GetInt32();
        Assert.InRange(completion, 1, 24);
        Assert.Equal(promptTokens + completion, usage.GetProperty("total_tokens").GetInt32());

        // The same request through the engine directly gives the same text: the server adds no decoding of its own.
        var direct = await host.Model.Engine.RunAsync(new DecodingRequest
        {
            Prompt = Prompt,
            Options = new GenerationOptions { MaxTokens = 24, Seed = 7 },
        });
        Assert.Equal(direct.Single().Text, text);
        Assert.Equal(direct.Single().Tokens.Count, completion);
    }

    [Fact]
    public async Task N_choices_are_indexed_and_choice_0_equals_the_single_sample()
    {
        await using var host = await Host.StartAsync();
        var four = await host.PostJsonAsync("/v1/completions", $$"""{"prompt": "{{Prompt}}", "max_tokens": 16, "seed": 3, "n": 4}""");
        var one = await host.PostJsonAsync("/v1/completions", $$"""{"prompt": "{{Prompt}}", "max_tokens": 16, "seed": 3}""");
        var choices = four.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2, 3], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.True(choices.Select(c => c.GetProperty("text").GetString()).Distinct().Count() > 1, "four samples with one seed should not all agree");
        // Sample i draws from the RNG row (seed, request, step, i, token), so row 0 does not depend on n.
        Assert.Equal(one.GetProperty("choices")[0].GetProperty("text").GetString(), choices[0].GetProperty("text").GetString());
        int sum = choices.Sum(c => c.GetProperty("alignment").GetProperty("tokens_evaluated").GetInt32());
        Assert.Equal(sum, four.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Theory]
    [InlineData(Transport.Loopback)]
    [InlineData(Transport.InProcess)]
    public async Task Streaming_sends_OpenAI_chunks_ending_in_DONE_with_the_same_text_as_a_plain_call(Transport transport)
    {
        await using var host = await Host.StartAsync(transport);
        string body = $$"""{"prompt": "{{Prompt}}", "max_tokens": 20, "seed": 11, "n": 2, "stream": true, "stream_options": {"include_usage": true} }""";
        var chunks = await host.StreamAsync("/v1/completions", body);
        var plain = await host.PostJsonAsync("/v1/completions", body.Replace("\"stream\": true", "\"stream\": false"));

        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        var texts = Sse.Texts(chunks);
        for (int i = 0; i < 2; i++) Assert.Equal(plain.GetProperty("choices")[i].GetProperty("text").GetString(), texts[i]);
        // One token per chunk for plain sampling, then one closing chunk per choice with finish_reason and alignment.
        var finals = chunks.SelectMany(c => c.GetProperty("choices").EnumerateArray()).Where(c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.String).ToList();
        Assert.Equal(2, finals.Count);
        Assert.All(finals, f => Assert.Equal("generate", f.GetProperty("alignment").GetProperty("strategy").GetString()));
        var usage = chunks[^1];
        Assert.Empty(usage.GetProperty("choices").EnumerateArray());
        Assert.Equal(plain.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), usage.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        int textChunks = chunks.Count(c => c.GetProperty("choices").EnumerateArray().Any(x => x.GetProperty("text").GetString()!.Length > 0));
        Assert.InRange(textChunks, 2, 40);
    }

    [Fact]
    public async Task Stop_sequences_cut_the_text_in_plain_and_streamed_answers()
    {
        await using var host = await Host.StartAsync();
        string baseBody = $$"""{"prompt": "{{Prompt}}", "max_tokens": 40, "seed": 5}""";
        string full = (await host.PostJsonAsync("/v1/completions", baseBody)).GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.True(full.Length > 12, full);
        string stop = full.Substring(8, 3);
        int cut = full.IndexOf(stop, StringComparison.Ordinal);
        string withStop = baseBody.Replace("\"seed\": 5", $"\"seed\": 5, \"stop\": [{JsonSerializer.Serialize(stop)}, \"@@never@@\"]");
        var stopped = (await host.PostJsonAsync("/v1/completions", withStop)).GetProperty("choices")[0];
        Assert.Equal(full[..cut], stopped.GetProperty("text").GetString());
        Assert.Equal("stop", stopped.GetProperty("finish_reason").GetString());
        var chunks = await host.StreamAsync("/v1/completions", withStop.Replace("\"seed\": 5", "\"seed\": 5, \"stream\": true"));
        Assert.Equal(full[..cut], Sse.Texts(chunks)[0]);
        var kept = (await host.PostJsonAsync("/v1/completions", withStop.Replace("\"seed\": 5", "\"seed\": 5, \"include_stop_str_in_output\": true"))).GetProperty("choices")[0];
        Assert.Equal(full[..(cut + stop.Length)], kept.GetProperty("text").GetString());
    }

    [Theory]
    [InlineData("bon", """{"strategy": "bon", "n": 8, "reward": "sentiment", "return_candidates": true}""")]
    [InlineData("tokenwise", """{"strategy": "tokenwise", "top_k": 4, "reward": "positive"}""")]
    [InlineData("blockwise", """{"strategy": "blockwise", "k": 4, "block": 4, "reward": "sentiment"}""")]
    [InlineData("rejection", """{"strategy": "rejection", "n": 8, "alpha": 0.5, "every": 4, "reward": "sentiment"}""")]
    [InlineData("rejection", """{"strategy": "rejection", "n": 8, "alpha": 0.75, "decide_at": 4, "reward": "sentiment"}""")]
    [InlineData("soft-bon", """{"strategy": "soft-bon", "n": 8, "lambda": 0.5, "reward": "sentiment"}""")]
    public async Task Stop_sequences_end_aligned_decoding_and_are_never_streamed(string strategy, string alignment)
    {
        await using var host = await Host.StartAsync();
        string body = $$$"""{"prompt": "{{{Prompt}}}", "max_tokens": 64, "seed": 3, "n": 2, "alignment": {{{alignment}}}}""";
        string stopped = body.Replace("\"seed\": 3", "\"seed\": 3, \"stop\": [\".\", \"!\"]");
        var free = await host.PostJsonAsync("/v1/completions", body);
        var cut = await host.PostJsonAsync("/v1/completions", stopped);
        long Evaluated(JsonElement r) => r.GetProperty("choices").EnumerateArray().Sum(c => c.GetProperty("alignment").GetProperty("tokens_evaluated").GetInt64());
        var texts = cut.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToList();
        foreach (var c in cut.GetProperty("choices").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            Assert.DoesNotContain(".", text);
            Assert.DoesNotContain("!", text);
        }
        Assert.True(Evaluated(cut) < Evaluated(free), $"{strategy}: {Evaluated(cut)} tokens with stop vs {Evaluated(free)} without");
        var chunks = await host.StreamAsync("/v1/completions", stopped.Replace("\"seed\": 3", "\"seed\": 3, \"stream\": true"));
        var streamed = Sse.Texts(chunks);
        for (int i = 0; i < texts.Count; i++) Assert.Equal(texts[i], streamed[i]);
        foreach (var chunk in chunks)
            foreach (var c in chunk.GetProperty("choices").EnumerateArray())
                if (c.TryGetProperty("text", out var t)) Assert.DoesNotContain(".", t.GetString()!);
    }

    [Theory]
    [InlineData("bon", """{"strategy": "bon", "n": 4, "reward": "sentiment", "return_candidates": true}""", "best_of_n_estimate")]
    [InlineData("tokenwise", """{"strategy": "tokenwise", "top_k": 4, "beta": 0.5, "reward": "positive"}""", "step_drift_sum")]
    [InlineData("blockwise", """{"strategy": "blockwise", "k": 4, "block": 4, "reward": "length:12"}""", "block_estimate")]
    [InlineData("rejection", """{"strategy": "rejection", "n": 4, "alpha": 0.5, "every": 4, "reward": "sentiment", "return_candidates": true}""", "best_of_n_estimate")]
    [InlineData("soft-bon", """{"strategy": "soft-bon", "n": 4, "lambda": 0.5, "reward": "sentiment", "return_candidates": true}""", "soft_best_of_n_estimate")]
    public async Task Each_strategy_reports_reward_kl_and_cost(string strategy, string alignment, string klMethod)
    {
        await using var host = await Host.StartAsync();
        var response = await host.PostJsonAsync("/v1/completions", $$$"""{"prompt": "{{{Prompt}}}", "max_tokens": 16, "seed": 2, "n": 2, "alignment": {{{alignment}}}}""");
        var choices = response.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal(2, choices.Count);
        foreach (var choice in choices)
        {
            var a = choice.GetProperty("alignment");
            Assert.Equal(strategy, a.GetProperty("strategy").GetString());
            Assert.Equal(klMethod, a.GetProperty("kl").GetProperty("method").GetString());
            Assert.True(a.GetProperty("kl").GetProperty("value").GetDouble() >= 0);
            Assert.NotNull(a.GetProperty("kl").GetProperty("band").GetString());
            Assert.Equal(JsonValueKind.Number, a.GetProperty("reward").ValueKind);
            Assert.True(a.GetProperty("tokens_evaluated").GetInt64() >= response.GetProperty("usage").GetProperty("completion_tokens").GetInt32() / 2);
            Assert.True(a.GetProperty("timings").GetProperty("total_ms").GetDouble() > 0);
            if (strategy != "tokenwise") Assert.Equal(JsonValueKind.Object, a.GetProperty("kl_bound").ValueKind);
        }

        if (strategy == "bon")
        {
            var candidates = choices[0].GetProperty("alignment").GetProperty("candidates").EnumerateArray().ToList();
            Assert.Equal(4, candidates.Count);
            var selected = Assert.Single(candidates, c => c.GetProperty("selected").GetBoolean());
            Assert.Equal(choices[0].GetProperty("text").GetString(), selected.GetProperty("text").GetString());
            double best = candidates.Max(c => c.GetProperty("reward").GetDouble());
            Assert.Equal(best, selected.GetProperty("reward").GetDouble());
            Assert.Equal(best, choices[0].GetProperty("alignment").GetProperty("reward").GetDouble());
        }
    }

    [Fact]
    public async Task Blockwise_streams_one_chunk_per_accepted_block()
    {
        await using var host = await Host.StartAsync();
        var chunks = await host.StreamAsync("/v1/completions",
            $$"""{"prompt": "{{Prompt}}", "max_tokens": 24, "seed": 4, "stream": true, "alignment": {"strategy": "blockwise", "k": 4, "block": 6} }""");
        var direct = new List<string>();
        await foreach (var e in host.Model.Engine.StreamAsync(new DecodingRequest
        {
            Prompt = Prompt,
            Options = new BlockwiseOptions { K = 4, BlockSize = 6, MaxTokens = 24, Seed = 4 },
            Reward = Engine.Rewards.Specs.RewardSpec.Parse("lexicon:sentiment"),
        }))
            if (e is TextAccepted t && t.TextDelta.Length > 0) direct.Add(t.TextDelta);
        var streamed = chunks.Select(c => c.GetProperty("choices").EnumerateArray().SingleOrDefault())
            .Where(c => c.ValueKind == JsonValueKind.Object && c.GetProperty("text").GetString()!.Length > 0)
            .Select(c => c.GetProperty("text").GetString()!).ToList();
        Assert.Equal(direct, streamed);
        Assert.InRange(streamed.Count, 2, 4); // 24 tokens in blocks of 6
    }

    [Fact]
    public async Task Models_lists_the_served_model()
    {
        await using var host = await Host.StartAsync();
        using var response = await host.Client.GetAsync("/v1/models");
        var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("list", doc.GetProperty("object").GetString());
        Assert.Equal("stories260K", doc.GetProperty("data")[0].GetProperty("id").GetString());
        using var one = await host.Client.GetAsync("/v1/models/stories260K");
        Assert.Equal(200, (int)one.StatusCode);
    }
}
