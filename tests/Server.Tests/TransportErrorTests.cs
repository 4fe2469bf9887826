using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Tilt.Server.Tests;

/// <summary>
/// Issue 25: client errors that used to be 500s (bytes that are not UTF-8, escaped lone surrogates, a chunked body that
/// never ends or drips, Content-Length together with chunked framing) are 4xx with OpenAI error JSON. Raw HTTP/1.1 over
/// a socket, since HttpClient refuses to send most of these.
/// </summary>
public sealed class TransportErrorTests
{
    // Bounds a read that a regression would leave hanging: a failure, not a wait for an event.
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    private static async Task<(int Status, string Body)> SendRaw(Host host, byte[] request)
    {
        var uri = new Uri(host.Server.Addresses.Single());
        using var client = new TcpClient();
        await client.ConnectAsync(uri.Host, uri.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(request);
        var response = new MemoryStream();
        var buffer = new byte[8192];
        using var cts = new CancellationTokenSource(Limit);
        int read;
        // Connection: close on every request: the response ends when the server closes the connection.
        while ((read = await stream.ReadAsync(buffer, cts.Token)) > 0) response.Write(buffer, 0, read);
        string text = Encoding.UTF8.GetString(response.ToArray());
        int status = int.Parse(text.Split(' ', 3)[1], System.Globalization.CultureInfo.InvariantCulture);
        int bodyAt = text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4;
        string body = text[bodyAt..];
        if (text[..bodyAt].Contains("transfer-encoding: chunked", StringComparison.OrdinalIgnoreCase)) body = Unchunk(body);
        return (status, body);
    }

    private static string Unchunk(string body)
    {
        var sb = new StringBuilder();
        int at = 0;
        while (true)
        {
            int eol = body.IndexOf("\r\n", at, StringComparison.Ordinal);
            int size = Convert.ToInt32(body[at..eol], 16);
            if (size == 0) return sb.ToString();
            sb.Append(body, eol + 2, size);
            at = eol + 2 + size + 2;
        }
    }

    private static byte[] Post(string path, byte[] body) =>
        [.. Encoding.ASCII.GetBytes($"POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n"), .. body];

    private static JsonElement AssertError(int status, string body, int expected, string? param = null)
    {
        Assert.True(status == expected, $"expected {expected}, got {status}: {body}");
        Assert.DoesNotContain("   at ", body);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        if (param is not null) Assert.Equal(param, error.GetProperty("param").GetString());
        return error;
    }

    [Fact]
    public async Task Invalid_utf8_and_lone_surrogates_are_400()
    {
        await using var host = await Host.StartAsync(Transport.Loopback);
        byte[] invalid = [.. "{\"prompt\": \"a"u8, 0xFF, 0xFE, .. "\", \"max_tokens\": 2}"u8];
        var (status, body) = await SendRaw(host, Post("/v1/completions", invalid));
        Assert.Contains("not valid UTF-8 (byte 0xFF at offset 13)", AssertError(status, body, 400).GetProperty("message").GetString());

        byte[] chatInvalid = [.. "{\"messages\": [{\"role\": \"user\", \"content\": \"a"u8, 0xFF, 0xFE, .. "\"}], \"max_tokens\": 2}"u8];
        (status, body) = await SendRaw(host, Post("/v1/chat/completions", chatInvalid));
        AssertError(status, body, 400);

        (status, body) = await SendRaw(host, Post("/v1/completions", """{"prompt": "a\ud800", "max_tokens": 2}"""u8.ToArray()));
        Assert.Contains("lone UTF-16 surrogate", AssertError(status, body, 400, "prompt").GetProperty("message").GetString());
        (status, body) = await SendRaw(host, Post("/v1/completions", """{"prompt": ["\udc00x"], "max_tokens": 2}"""u8.ToArray()));
        AssertError(status, body, 400, "prompt[0]");
        (status, body) = await SendRaw(host, Post("/v1/chat/completions", """{"messages": [{"role": "user", "content": "\ud800"}], "max_tokens": 2}"""u8.ToArray()));
        AssertError(status, body, 400, "messages[0].content");
        (status, body) = await SendRaw(host, Post("/v1/chat/completions",
            """{"messages": [{"role": "user", "content": [{"type": "text", "text": "ok \ud83d\ude00 \ud800"}]}], "max_tokens": 2}"""u8.ToArray()));
        AssertError(status, body, 400, "messages[0].content[0].text");
        (status, body) = await SendRaw(host, Post("/v1/completions", """{"prompt": "x", "max_tokens": 2, "alignment": {"strategy": "bon", "reward": "\ud800"}}"""u8.ToArray()));
        AssertError(status, body, 400);
        (status, body) = await SendRaw(host, Post("/v1/completions", """{"prompt": "x", "max_tokens": 2, "stop": ["\ud800"]}"""u8.ToArray()));
        AssertError(status, body, 400);
        // A surrogate pair is text: accepted.
        (status, body) = await SendRaw(host, Post("/v1/completions", """{"prompt": "Once \ud83d\ude00", "max_tokens": 2}"""u8.ToArray()));
        Assert.True(status == 200, body);
    }

    [Fact]
    public async Task A_chunked_body_that_stops_is_408_with_json()
    {
        await using var host = await Host.StartAsync(Transport.Loopback, new ServerOptions { Limits = new RequestLimits { BodyGracePeriod = TimeSpan.FromSeconds(1.5) } });
        // One chunk and then nothing: the server answers once the grace period is over.
        byte[] request = Encoding.ASCII.GetBytes("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n" +
                                                 "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"pro\r\n");
        var (status, body) = await SendRaw(host, request);
        Assert.Equal("request_timeout", AssertError(status, body, 408).GetProperty("code").GetString());
    }

    /// <summary>
    /// Content-Length beside Transfer-Encoding: chunked: Kestrel follows the chunked framing (RFC 9112 6.3), so a well
    /// framed body is served; a malformed chunked body is Kestrel's 400, which reaches the client as OpenAI error JSON.
    /// </summary>
    [Fact]
    public async Task Content_length_with_chunked_framing_follows_the_chunks_and_bad_chunks_are_400_with_json()
    {
        await using var host = await Host.StartAsync(Transport.Loopback);
        const string Head = "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n" +
                            "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n";
        var (status, body) = await SendRaw(host, Encoding.ASCII.GetBytes(Head + "1c\r\n{\"prompt\": \"x\", \"max_tokens\"\r\n3\r\n: 2\r\n1\r\n}\r\n0\r\n\r\n"));
        Assert.True(status == 200, body);
        Assert.True(JsonDocument.Parse(body).RootElement.TryGetProperty("choices", out _), body);

        (status, body) = await SendRaw(host, Encoding.ASCII.GetBytes(Head + "zz\r\n{\"prompt\": \"x\"}\r\n0\r\n\r\n"));
        Assert.Equal("invalid_request", AssertError(status, body, 400).GetProperty("code").GetString());
    }
}
