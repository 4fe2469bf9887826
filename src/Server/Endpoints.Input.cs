using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Tilt.Engine.Models;

namespace Tilt.Server;

/// <summary>Reading a request: the body within its limits, valid UTF-8 and JSON, and the prompt or chat messages as text.</summary>
internal static partial class Endpoints
{
    private static async Task<T> ReadBody<T>(HttpContext ctx, RequestLimits limits) where T : class
    {
        long limit = limits.MaxBodyBytes;
        if (ctx.Request.ContentLength > limit) throw TooLarge(limit);
        var buffer = new MemoryStream();
        var chunk = new byte[16384];
        try
        {
            int read;
            while ((read = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
            {
                if (buffer.Length + read > limit) throw TooLarge(limit);
                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException e)
        {
            // Kestrel's own verdicts on the body (too large, too slow, malformed chunked framing): the client's, never a 500.
            throw e.StatusCode switch
            {
                StatusCodes.Status413PayloadTooLarge => TooLarge(limit),
                StatusCodes.Status408RequestTimeout => new ApiException(408,
                    "the request body did not arrive in time (slower than 240 bytes/s after the grace period): send the whole body at once", null, "request_timeout"),
                var status => new ApiException(status is >= 400 and < 500 ? status : 400, $"malformed request body: {e.Message}", null, "invalid_request"),
            };
        }
        if (buffer.Length == 0) throw new ApiException(400, "the request body is empty: send a JSON object", null, "invalid_json");
        if (InvalidUtf8At(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)) is { } bad)
            throw new ApiException(400, $"the request body is not valid UTF-8 (byte 0x{buffer.GetBuffer()[bad]:X2} at offset {bad}): JSON text must be UTF-8", null, "invalid_json");
        CheckEscapes(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        try
        {
            return JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), ServerJson.Options)
                   ?? throw new ApiException(400, "the request body must be a JSON object, got null", null, "invalid_json");
        }
        catch (JsonException e)
        {
            string? param = e.Path is { Length: > 2 } path ? path[2..] : null;
            string what = param is null ? "the request body is not valid JSON" : $"'{param}' has the wrong type or an invalid value";
            string where = e.LineNumber is { } line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1})" : "";
            throw new ApiException(400, what + where + (e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? ": unknown field in alignment" : ""), param, "invalid_json");
        }
    }

    /// <summary>
    /// Refuses a string anywhere in the body whose escapes decode to no text (an escaped high surrogate with no low one):
    /// System.Text.Json throws InvalidOperationException for it wherever the string is read, which would be a 500.
    /// Malformed JSON is left to the deserializer, which reports its position.
    /// </summary>
    private static void CheckEscapes(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = ServerJson.Options.MaxDepth });
        var path = new List<(bool IsArray, int Index, string? Name)>(); // where the reader is, to name the field
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        NextItem();
                        path.Add((reader.TokenType == JsonTokenType.StartArray, -1, null));
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        path.RemoveAt(path.Count - 1);
                        break;
                    case JsonTokenType.PropertyName:
                        path[^1] = (false, -1, Decode(ref reader, path));
                        break;
                    default:
                        NextItem();
                        if (reader.TokenType == JsonTokenType.String && reader.ValueIsEscaped) Decode(ref reader, path);
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // Reported by the deserializer, with line and byte.
        }

        void NextItem()
        {
            if (path.Count > 0 && path[^1].IsArray) path[^1] = (true, path[^1].Index + 1, null);
        }

        static string Decode(ref Utf8JsonReader reader, List<(bool IsArray, int Index, string? Name)> path)
        {
            try
            {
                return reader.GetString()!;
            }
            catch (InvalidOperationException)
            {
                var where = new StringBuilder();
                foreach (var (isArray, index, name) in path)
                {
                    if (isArray) where.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{index}]");
                    else if (name is not null) where.Append(where.Length > 0 ? "." : "").Append(name);
                }
                string? param = where.Length > 0 ? where.ToString() : null;
                throw new ApiException(400, $"{param ?? "a string"} holds an escaped lone UTF-16 surrogate (such as \\ud800), which is not Unicode text",
                    param, "invalid_value");
            }
        }
    }

    /// <summary>The offset of the first byte that is not part of valid UTF-8, or null when all are.</summary>
    private static int? InvalidUtf8At(ReadOnlySpan<byte> bytes)
    {
        if (System.Text.Unicode.Utf8.IsValid(bytes)) return null;
        var chars = new char[bytes.Length];
        System.Text.Unicode.Utf8.ToUtf16(bytes, chars, out int read, out _, replaceInvalidSequences: false);
        return read;
    }

    /// <summary>
    /// A JSON string field as text the tokenizer can take: an escaped lone surrogate ("\ud800") decodes to a string that
    /// is not Unicode and cannot be encoded as UTF-8, so it is refused here, naming the field.
    /// </summary>
    private static string Text(JsonElement e, string param)
    {
        string text;
        try
        {
            text = e.GetString()!;
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json refuses to decode an escaped high surrogate that no low one follows.
            throw ApiException.BadField(param, $"{param} holds an escaped lone UTF-16 surrogate (such as \\ud800), which is not Unicode text");
        }
        for (int i = 0; i < text.Length; i++)
        {
            if (!char.IsSurrogate(text[i])) continue;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            throw ApiException.BadField(param, $"{param} holds a lone UTF-16 surrogate (\\u{(int)text[i]:X4} at character {i}), which is not Unicode text");
        }
        return text;
    }

    private static ApiException TooLarge(long limit) => new(413, $"the request body is larger than {limit} bytes", null, "request_too_large");

    private static string Prompt(JsonElement? prompt)
    {
        if (prompt is not { } e || e.ValueKind == JsonValueKind.Null) throw ApiException.BadField("prompt", "prompt is required");
        if (e.ValueKind == JsonValueKind.String) return Text(e, "prompt");
        if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 1 && e[0].ValueKind == JsonValueKind.String) return Text(e[0], "prompt");
        throw ApiException.BadField("prompt", "prompt must be a string or an array of one string (token arrays and batches of prompts are not served)");
    }

    private static List<ChatMessage> Messages(List<ChatMessageDto>? messages, RequestLimits limits)
    {
        if (messages is null || messages.Count == 0) throw ApiException.BadField("messages", "messages must be a non-empty array");
        if (messages.Count > limits.MaxMessages)
            throw new ApiException(400, $"messages holds {messages.Count} messages; the limit is {limits.MaxMessages}", "messages", "out_of_range");
        var list = new List<ChatMessage>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            if (m is null) throw ApiException.BadField($"messages[{i}]", $"messages[{i}] must be an object");
            if (m.Role is not ("system" or "developer" or "user" or "assistant"))
                throw ApiException.BadField($"messages[{i}].role", $"messages[{i}].role must be system, developer, user or assistant, got '{m.Role}'");
            list.Add(new ChatMessage(m.Role == "developer" ? "system" : m.Role, Content(m.Content, i)));
        }
        return list;
    }

    private static string Content(JsonElement? content, int i)
    {
        if (content is { ValueKind: JsonValueKind.String } s) return Text(s, $"messages[{i}].content");
        if (content is { ValueKind: JsonValueKind.Array } parts)
        {
            var text = new StringBuilder();
            foreach (var part in parts.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.GetString() != "text"
                    || !part.TryGetProperty("text", out var t) || t.ValueKind != JsonValueKind.String)
                    throw ApiException.BadField($"messages[{i}].content", $"messages[{i}].content parts must be {{\"type\": \"text\", \"text\": ...}} (only text is served)");
                text.Append(Text(t, $"messages[{i}].content"));
            }
            return text.ToString();
        }
        throw ApiException.BadField($"messages[{i}].content", $"messages[{i}].content must be a string or an array of text parts");
    }
}
