using System.Text.Json;

namespace Tilt.Server.Tests;

/// <summary>Per-token log-probabilities in OpenAI's completions and chat shapes, whole and streamed.</summary>
public sealed class LogprobTests
{
    private const string Prompt = "Once upon a time";

    private static double[] Values(JsonElement logprobs) =>
        logprobs.GetProperty("token_logprobs").EnumerateArray().Select(v => v.GetDouble()).ToArray();

    [Theory]
    [InlineData(null)]
    [InlineData("""{"strategy": "bon", "n": 4, "reward": "sentiment"}""")]
    [InlineData("""{"strategy": "blockwise", "k": 3, "block": 4, "reward": "sentiment"}""")]
    [InlineData("""{"strategy": "tokenwise", "top_k": 4, "reward": "sentiment"}""")]
    public async Task Completions_report_every_token_with_its_top_alternatives(string? alignment)
    {
        await using var host = await Host.StartAsync();
        string body = $$"""{"prompt": "{{Prompt}}", "max_tokens": 20, "seed": 4, "logprobs": 3{{(alignment is null ? "" : ", \"alignment\": " + alignment)}}}""";
        var response = await host.PostJsonAsync("/v1/completions", body);
        var choice = response.GetProperty("choices")[0];
        var logprobs = choice.GetProperty("logprobs");
        int count = response.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        var tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToArray();
        Assert.Equal(count, tokens.Length);
        var values = Values(logprobs);
        Assert.Equal(count, values.Length);
        Assert.Equal(choice.GetProperty("alignment").GetProperty("logprob").GetDouble(), values.Sum(), 1e-6);
        Assert.Equal(logprobs.GetProperty("sequence_logprob").GetDouble(), values.Sum(), 1e-6);
        var top = logprobs.GetProperty("top_logprobs").EnumerateArray().ToArray();
        Assert.Equal(count, top.Length);
        for (int i = 0; i < count; i++)
        {
            var alternatives = top[i].EnumerateObject().ToArray();
            Assert.InRange(alternatives.Length, 1, 3);
            Assert.True(alternatives[0].Value.GetDouble() >= values[i] - 1e-5, "the first alternative is the most likely");
        }
        var offsets = logprobs.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToArray();
        Assert.Equal(0, offsets[0]);

        // Streamed chunks carry the same values for the same tokens.
        var chunks = await host.StreamAsync("/v1/completions", body.Replace("\"seed\": 4", "\"seed\": 4, \"stream\": true"));
        var streamed = chunks.SelectMany(c => c.GetProperty("choices").EnumerateArray())
            .Where(c => c.TryGetProperty("logprobs", out var l) && l.ValueKind == JsonValueKind.Object)
            .SelectMany(c => Values(c.GetProperty("logprobs"))).ToArray();
        // With the F16 KV cache a prompt-cache copy and another batch composition move logits by ~1e-6 (docs/architecture.md).
        Assert.Equal(values.Length, streamed.Length);
        for (int i = 0; i < values.Length; i++) Assert.Equal(values[i], streamed[i], 1e-3);
    }

    [Fact]
    public async Task Chat_reports_content_entries_with_bytes_and_top_logprobs()
    {
        await using var host = await Host.StartAsync();
        string body = """{"messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 12, "seed": 2, "logprobs": true, "top_logprobs": 2}""";
        var response = await host.PostJsonAsync("/v1/chat/completions", body);
        var content = response.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("content").EnumerateArray().ToArray();
        Assert.Equal(response.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), content.Length);
        foreach (var entry in content)
        {
            Assert.True(entry.GetProperty("logprob").GetDouble() <= 0);
            string token = entry.GetProperty("token").GetString()!;
            Assert.Equal(System.Text.Encoding.UTF8.GetBytes(token).Select(b => (int)b), entry.GetProperty("bytes").EnumerateArray().Select(b => b.GetInt32()));
            Assert.Equal(2, entry.GetProperty("top_logprobs").GetArrayLength());
        }
        var chunks = await host.StreamAsync("/v1/chat/completions", body.Replace("\"seed\": 2", "\"seed\": 2, \"stream\": true"));
        var streamed = chunks.SelectMany(c => c.GetProperty("choices").EnumerateArray())
            .Where(c => c.TryGetProperty("logprobs", out var l) && l.ValueKind == JsonValueKind.Object)
            .SelectMany(c => c.GetProperty("logprobs").GetProperty("content").EnumerateArray()).Select(e => e.GetProperty("logprob").GetDouble());
        var whole = content.Select(e => e.GetProperty("logprob").GetDouble()).ToArray();
        var parts = streamed.ToArray();
        Assert.Equal(whole.Length, parts.Length);
        for (int i = 0; i < whole.Length; i++) Assert.Equal(whole[i], parts[i], 1e-3);

        var refused = await host.PostJsonAsync("/v1/chat/completions", body.Replace("\"logprobs\": true, ", ""), 400);
        Assert.Equal("top_logprobs", refused.GetProperty("error").GetProperty("param").GetString());
    }
}

/// <summary>echo: the prompt in the text and, with logprobs, its tokens' log-probabilities; max_tokens 0 scores only.</summary>
public sealed class EchoTests
{
    [Fact]
    public async Task Echo_with_max_tokens_0_scores_the_prompt_as_a_log_likelihood_harness_reads_it()
    {
        await using var host = await Host.StartAsync();
        const string context = "Once upon a time", continuation = ", there was a girl";
        var response = await host.PostJsonAsync("/v1/completions",
            $$"""{"prompt": "{{context + continuation}}", "max_tokens": 0, "echo": true, "logprobs": 1}""");
        var choice = response.GetProperty("choices")[0];
        Assert.Equal(context + continuation, choice.GetProperty("text").GetString());
        Assert.Equal(0, response.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var logprobs = choice.GetProperty("logprobs");
        var values = logprobs.GetProperty("token_logprobs").EnumerateArray().ToArray();
        Assert.Equal(response.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), values.Length);
        Assert.Equal(JsonValueKind.Null, values[0].ValueKind);
        var offsets = logprobs.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToArray();
        var tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToArray();
        var top = logprobs.GetProperty("top_logprobs").EnumerateArray().ToArray();
        double sum = 0;
        bool greedy = true;
        for (int i = 0; i < values.Length; i++)
        {
            if (offsets[i] < context.Length) continue;
            sum += values[i].GetDouble();
            greedy &= top[i].EnumerateObject().OrderByDescending(p => p.Value.GetDouble()).First().Name == tokens[i];
        }
        var engine = await host.Model.Engine.ScoreAsync(context, continuation);
        Assert.Equal(engine.LogProb, sum, 1e-3);
        Assert.Equal(engine.IsGreedy, greedy);

        var refused = await host.PostJsonAsync("/v1/completions", """{"prompt": "x", "max_tokens": 0}""", 400);
        Assert.Equal("max_tokens", refused.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Echo_with_generation_returns_prompt_and_generated_tokens_logprobs()
    {
        await using var host = await Host.StartAsync();
        var response = await host.PostJsonAsync("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 8, "seed": 1, "echo": true, "logprobs": 2}""");
        var choice = response.GetProperty("choices")[0];
        Assert.StartsWith("Once upon a time", choice.GetProperty("text").GetString());
        var usage = response.GetProperty("usage");
        int total = usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32();
        Assert.Equal(total, choice.GetProperty("logprobs").GetProperty("tokens").GetArrayLength());
        var offsets = choice.GetProperty("logprobs").GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToArray();
        Assert.Equal(offsets.Order(), offsets);

        var chunks = await host.StreamAsync("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 0, "echo": true, "logprobs": 2, "stream": true}""");
        Assert.Equal("Once upon a time", Sse.Texts(chunks)[0]);
    }
}
