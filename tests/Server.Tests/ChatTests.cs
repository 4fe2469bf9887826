using System.Text.Json;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Text;
using Tilt.Tests;
using Tilt.Engine.Models.Loading;

namespace Tilt.Server.Tests;

public sealed class ChatTests
{
    // The chatml template as models ship it (Jinja); llama.cpp recognizes it by its markers.
    private const string ChatmlJinja =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    [Theory]
    [InlineData(Transport.Loopback)]
    [InlineData(Transport.InProcess)]
    public async Task Chat_without_a_template_prompts_with_the_message_text(Transport transport)
    {
        await using var host = await Host.StartAsync(transport);
        Assert.Null(host.Model.Model.Info.ChatTemplate); // stories260K has none: the documented fallback applies
        var chat = await host.PostJsonAsync("/v1/chat/completions",
            """{"model": "stories260K", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 20, "seed": 9}""");
        var completion = await host.PostJsonAsync("/v1/completions", """{"prompt": "Once upon a time", "max_tokens": 20, "seed": 9}""");
        Assert.Equal("chat.completion", chat.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", chat.GetProperty("id").GetString());
        var message = chat.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal("assistant", message.GetProperty("role").GetString());
        Assert.Equal(completion.GetProperty("choices")[0].GetProperty("text").GetString(), message.GetProperty("content").GetString());
        Assert.Equal(completion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Chat_streams_a_role_chunk_then_deltas_then_DONE()
    {
        await using var host = await Host.StartAsync();
        var chunks = await host.StreamAsync("/v1/chat/completions",
            """{"messages": [{"role": "system", "content": "A story."}, {"role": "user", "content": [{"type": "text", "text": "Once upon"}, {"type": "text", "text": " a time"}]}], "max_tokens": 16, "seed": 1, "stream": true, "alignment": {"strategy": "bon", "n": 3}}""");
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        var first = chunks[0].GetProperty("choices")[0].GetProperty("delta");
        Assert.Equal("assistant", first.GetProperty("role").GetString());
        var plain = await host.PostJsonAsync("/v1/chat/completions",
            """{"messages": [{"role": "system", "content": "A story."}, {"role": "user", "content": "Once upon a time"}], "max_tokens": 16, "seed": 1, "alignment": {"strategy": "bon", "n": 3}}""");
        Assert.Equal(plain.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), Sse.Texts(chunks)[0]);
        var last = chunks[^1].GetProperty("choices")[0];
        Assert.Equal("bon", last.GetProperty("alignment").GetProperty("strategy").GetString());
        Assert.Equal(JsonValueKind.String, last.GetProperty("finish_reason").ValueKind);
    }

    [Fact]
    public async Task A_model_with_a_chat_template_gets_it_applied_by_llama_cpp()
    {
        // A tiny random-weight model with stories260K's vocabulary and a chatml template, written as make-model --chat-template does.
        string dir = Directory.CreateTempSubdirectory("tilt-chat-").FullName;
        try
        {
            string path = Path.Combine(dir, "chatml.gguf");
            SyntheticModel.Write(path, new ModelShape("tiny", 64, 1, 2, 2, 128, 512), SentencePieceVocabulary.CopyFrom(TestPaths.DefaultModel), GgufTensorType.F32,
                chatTemplate: ChatmlJinja);
            await using var host = await Host.StartAsync(modelPath: path);
            Assert.Equal(ChatmlJinja, host.Model.Model.Info.ChatTemplate);
            string expected = "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n";
            Assert.Equal(expected, ChatPrompt.Format(host.Model.Model.Info, [new ChatMessage("system", "Be kind."), new ChatMessage("user", "Hello")]));
            var chat = await host.PostJsonAsync("/v1/chat/completions",
                """{"model": "chatml", "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}], "max_tokens": 4, "seed": 1}""");
            Assert.Equal(host.Model.Model.Tokenize(expected).Length, chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void An_unknown_template_is_a_named_error()
    {
        using var model = LanguageModel.Load(TestPaths.DefaultModel); // loads llama.cpp's library
        var e = Assert.Throws<Engine.TiltException>(() => ChatPrompt.Apply("{{ not a template llama.cpp knows }}", [new ChatMessage("user", "hi")]));
        Assert.Contains("chat template", e.Message);
    }
}
