using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.TestHost;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Kernels;
using Tilt.Hosting;
using Tilt.Tests;

namespace Tilt.Server.Tests;

/// <summary>How a test reaches the server: Kestrel on a real loopback port, or ASP.NET Core's in-process TestServer.</summary>
public enum Transport
{
    Loopback,
    InProcess,
}

/// <summary>A started server and a client for it.</summary>
internal sealed class Host : IAsyncDisposable
{
    private Host(TiltServer server, HttpClient client)
    {
        Server = server;
        Client = client;
    }

    public TiltServer Server { get; }
    public HttpClient Client { get; }

    /// <summary>The one model a single-model host serves.</summary>
    public ServedModel Model => Server.Models!.All.Single();

    /// <summary>Settings of the engine a test host serves the model with: F32 KV (outputs independent of the batch), CPU kernels.</summary>
    public static TiltModelOptions Configure(TiltModelOptions model, EngineOptions? engine = null)
    {
        engine ??= new EngineOptions();
        model.MaxSequences = engine.MaxSequences;
        model.MaxQueuedRequests = engine.MaxQueuedRequests;
        model.MaxSequenceLength = engine.MaxSequenceLength;
        model.KvCacheType = KvCacheType.F32;
        model.Backend = KernelBackend.Cpu;
        return model;
    }

    /// <summary>
    /// Starts a server on the models <paramref name="models"/> configures; without it, the one model at
    /// <paramref name="modelPath"/> (default stories260K) under its file name, with <paramref name="engine"/>'s capacity.
    /// </summary>
    public static async Task<Host> StartAsync(Transport transport = Transport.Loopback, ServerOptions? options = null, EngineOptions? engine = null,
        Action<TiltOptions>? models = null, bool waitForModel = true, string? modelPath = null, TimeSpan? drain = null)
    {
        options ??= new ServerOptions();
        options = options with { Port = 0 };
        string path = modelPath ?? TestPaths.DefaultModel;
        models ??= o => Configure(o.AddModel(Path.GetFileNameWithoutExtension(path), path), engine);
        var server = TiltServer.Create(options, o =>
            {
                models(o);
                if (drain is { } d) o.DrainTimeout = d;
            },
            transport == Transport.InProcess ? b => b.WebHost.UseTestServer() : null);
        await server.StartAsync();
        HttpClient client;
        if (transport == Transport.InProcess)
        {
            client = server.App.GetTestClient();
        }
        else
        {
            string address = server.Addresses.Single();
            Assert.StartsWith("http://127.0.0.1:", address);
            client = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(120) };
        }
        if (waitForModel) await server.ModelReady.WaitAsync(TimeSpan.FromSeconds(60));
        return new Host(server, client);
    }

    public Task<HttpResponseMessage> PostAsync(string path, string json, string? key = null, CancellationToken token = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token);
    }

    public async Task<JsonElement> PostJsonAsync(string path, string json, int expectedStatus = 200)
    {
        using var response = await PostAsync(path, json);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expectedStatus, $"expected {expectedStatus}, got {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Posts a streaming request and parses every SSE frame: the JSON chunks, then checks the terminating [DONE].</summary>
    public async Task<List<JsonElement>> StreamAsync(string path, string json)
    {
        using var response = await PostAsync(path, json);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return Sse.Parse(await response.Content.ReadAsStringAsync(), requireDone: true);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>Server-sent events as OpenAI sends them: "data: JSON" frames separated by blank lines, the last "data: [DONE]".</summary>
internal static class Sse
{
    public static List<JsonElement> Parse(string body, bool requireDone)
    {
        var frames = body.Replace("\r\n", "\n").Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var chunks = new List<JsonElement>();
        bool done = false;
        foreach (var frame in frames)
        {
            Assert.False(done, "a frame after data: [DONE]");
            var lines = frame.Split('\n');
            Assert.Single(lines);
            Assert.StartsWith("data: ", lines[0]);
            string data = lines[0]["data: ".Length..];
            if (data == "[DONE]")
            {
                done = true;
                continue;
            }
            chunks.Add(JsonDocument.Parse(data).RootElement.Clone());
        }
        if (requireDone) Assert.True(done, "the stream did not end with data: [DONE]");
        return chunks;
    }

    /// <summary>The text of each choice, concatenated over the chunks (completions: text; chat: delta.content).</summary>
    public static Dictionary<int, string> Texts(IEnumerable<JsonElement> chunks)
    {
        var texts = new Dictionary<int, string>();
        foreach (var chunk in chunks)
        {
            foreach (var choice in chunk.GetProperty("choices").EnumerateArray())
            {
                int index = choice.GetProperty("index").GetInt32();
                string piece = choice.TryGetProperty("text", out var t) ? t.GetString()!
                    : choice.GetProperty("delta").TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : "";
                texts[index] = texts.GetValueOrDefault(index, "") + piece;
            }
        }
        return texts;
    }
}
