using Tilt.Engine.Requests;

namespace Tilt.Server;

/// <summary>
/// How <c>tilt serve</c> listens, whom it admits and what it lets requests ask for. What concerns the models and their
/// engines (files, capacity, KV cache, threads, the drain on shutdown) is Tilt.Hosting's <c>TiltOptions</c>.
/// </summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind. Defaults to loopback (127.0.0.1): exposing the server is an explicit choice.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (the bound address is printed). Defaults to 8080.</summary>
    public int Port
    {
        get;
        init => field = value is >= 0 and <= 65535 ? value : throw new ArgumentOutOfRangeException(nameof(Port), value, $"the port must be between 0 and 65535, got {value}");
    } = 8080;

    /// <summary>When set, every route except /health needs <c>Authorization: Bearer KEY</c>. Defaults to null (no key).</summary>
    public string? ApiKey
    {
        get;
        init => field = value is null || value.Length > 0 ? value : throw new ArgumentException("the API key must not be empty", nameof(ApiKey));
    }

    /// <summary>
    /// A JSON file naming the rewards and value heads requests may use:
    /// <c>{"rewards": {"NAME": "SPEC"}, "value_heads": {"NAME": "FILE"}}</c> (paths relative to the file). Defaults to null:
    /// only the built-ins.
    /// </summary>
    public string? RewardsFile { get; init; }

    /// <summary>
    /// When set, reward specs in requests may read files (<c>lexicon:FILE</c>, <c>head:FILE</c>) and name value heads by
    /// path, but only inside this directory after resolving symbolic links. Defaults to null: requests never name files.
    /// </summary>
    public string? AllowFilesDirectory { get; init; }

    /// <summary>What one request may ask for.</summary>
    public RequestLimits Limits { get; init; } = new();
}

/// <summary>Bounds on what one request may ask for; a value outside them is a 400 naming the field and the limit.</summary>
public sealed record RequestLimits
{
    /// <summary>Largest request body in bytes (413 beyond). Defaults to 1 MiB.</summary>
    public long MaxBodyBytes { get; init; } = 1 << 20;

    /// <summary>Largest max_tokens. Defaults to 1024 (the model's context also bounds prompt + max_tokens).</summary>
    public int MaxTokens { get; init; } = 1024;

    /// <summary>Largest n (choices per request). Defaults to 16.</summary>
    public int MaxChoices { get; init; } = 16;

    /// <summary>Largest alignment.n (best-of-n candidates), alignment.k (blockwise candidate blocks) and alignment.top_k. Defaults to 64.</summary>
    public int MaxCandidates { get; init; } = 64;

    /// <summary>Largest alignment.block (tokens per block). Defaults to 256.</summary>
    public int MaxBlock { get; init; } = 256;

    /// <summary>Longest prompt (all messages together) in characters. Defaults to 65536.</summary>
    public int MaxPromptChars { get; init; } = 65536;

    /// <summary>Most chat messages. Defaults to 256.</summary>
    public int MaxMessages { get; init; } = 256;

    /// <summary>Most stop sequences (the engine's bound, <see cref="Tilt.Engine.Requests.StopSequences.MaxStrings"/>). Defaults to 16.</summary>
    public int MaxStops { get; init; } = Tilt.Engine.Requests.StopSequences.MaxStrings;

    /// <summary>Longest stop sequence in UTF-8 bytes (the engine's bound). Defaults to 256.</summary>
    public int MaxStopBytes { get; init; } = Tilt.Engine.Requests.StopSequences.MaxStringBytes;

    /// <summary>Longest reward spec in a request. Defaults to 512 characters.</summary>
    public int MaxRewardSpecChars { get; init; } = 512;

    /// <summary>
    /// The compute budget of one aligned request: wall time from its arrival, decoding and reward scoring together. When it
    /// passes, the output in progress is returned as it stands (finish_reason "length") and no further choice is started, so
    /// no request's rewards or candidates can hold the server's capacity longer than this. Rewards are scored beside the
    /// decode loop (docs/architecture.md, "Scoring stage"), so a slow reward costs its own request this budget, not the
    /// others their latency. 1 s..1 h; defaults to 120 s.
    /// </summary>
    public TimeSpan MaxAlignmentTime
    {
        get;
        init => field = value >= TimeSpan.FromSeconds(1) && value <= TimeSpan.FromHours(1)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxAlignmentTime), value, $"the alignment time budget must be between 1 s and 1 h, got {value}");
    } = TimeSpan.FromSeconds(120);

    /// <summary>How long one regex count of a request's reward may run per candidate. Defaults to 100 ms.</summary>
    public TimeSpan RegexMatchTimeout { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How long a request body may arrive slower than 240 bytes/s (Kestrel's minimum body data rate) before the request
    /// is answered 408: a body that never ends, or drips, does not hold a connection for ever. More than 1 s (Kestrel's
    /// heartbeat). Defaults to 5 s.
    /// </summary>
    public TimeSpan BodyGracePeriod
    {
        get;
        init => field = value > TimeSpan.FromSeconds(1)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(BodyGracePeriod), value, "the body grace period must be more than 1 s (Kestrel's heartbeat)");
    } = TimeSpan.FromSeconds(5);
}
