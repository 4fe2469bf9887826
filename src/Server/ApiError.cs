using System.Text.Json.Serialization;

namespace Tilt.Server;

/// <summary>A request the server refuses, in OpenAI's error shape; thrown by the request mapping, caught by the endpoints.</summary>
public sealed class ApiException : Exception
{
    public ApiException(int status, string message, string? param = null, string? code = null, string? type = null)
        : base(message)
    {
        Status = status;
        Param = param;
        Code = code;
        Type = type ?? status switch
        {
            401 => "authentication_error",
            404 => "not_found_error",
            413 => "invalid_request_error",
            429 or 503 => "server_busy",
            >= 500 => "server_error",
            _ => "invalid_request_error",
        };
    }

    public int Status { get; }
    public string? Param { get; }
    public string? Code { get; }
    public string Type { get; }

    /// <summary>Seconds a client should wait before retrying (503 busy / shutting down), else null.</summary>
    public int? RetryAfterSeconds { get; init; }

    public static ApiException BadField(string param, string message) => new(400, message, param, "invalid_value");

    public ErrorBody ToBody() => new(new ErrorDetail(Message, Type, Param, Code));
}

/// <summary><c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
public sealed record ErrorBody([property: JsonPropertyName("error")] ErrorDetail Error);

/// <summary>The body of an OpenAI error.</summary>
public sealed record ErrorDetail(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonPropertyName("code"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);
