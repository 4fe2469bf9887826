using System.Text;

namespace Tilt.Engine.Requests;

/// <summary>
/// What ends a sequence besides the model's own stop tokens and the token limit: stop strings, matched in the detokenized
/// text across token boundaries, and stop token ids. A sequence ends the moment its text contains a stop string (or it
/// samples a stop token id), exactly like EOS: it decodes nothing more, its tokens include the token that completed the
/// stop, and its finish is <see cref="AlignFinish.Stop"/>. Streaming holds text back only while it could still
/// be the start of a stop string, so no streamed text ever lies past a stop.
/// </summary>
public sealed record StopSequences
{
    /// <summary>Most stop strings one request may carry.</summary>
    public const int MaxStrings = 16;

    /// <summary>Longest stop string, in UTF-8 bytes.</summary>
    public const int MaxStringBytes = 256;

    /// <summary>Most stop token ids one request may carry.</summary>
    public const int MaxTokenIds = 64;

    /// <summary>Stop strings (1..<see cref="MaxStringBytes"/> UTF-8 bytes each, at most <see cref="MaxStrings"/>). Defaults to none.</summary>
    public IReadOnlyList<string> Strings
    {
        get;
        init => field = Checked(value, nameof(Strings), MaxStrings, "stop strings", s =>
            (s is null ? 0 : Encoding.UTF8.GetByteCount(s)) is var bytes and (< 1 or > MaxStringBytes)
                ? (bytes, $"each stop string must be 1 to {MaxStringBytes} UTF-8 bytes, got {bytes}")
                : null);
    } = [];

    /// <summary>Token ids that end a sequence like EOS (at most <see cref="MaxTokenIds"/>, each >= 0). Defaults to none.</summary>
    public IReadOnlyList<int> TokenIds
    {
        get;
        init => field = Checked(value, nameof(TokenIds), MaxTokenIds, "stop token ids", id => id < 0 ? (id, $"stop token ids must be >= 0, got {id}") : null);
    } = [];

    /// <summary>
    /// Keep the stop string (or the stop token's text) at the end of the output. Defaults to false (OpenAI's behaviour: the
    /// text ends just before the stop).
    /// </summary>
    public bool IncludeStop { get; init; }

    /// <summary>True when there is nothing to match.</summary>
    public bool IsEmpty => Strings.Count == 0 && TokenIds.Count == 0;

    /// <summary>Stop strings alone (the common case).</summary>
    public static StopSequences FromStrings(IEnumerable<string> strings, bool includeStop = false) =>
        new() { Strings = strings.ToArray(), IncludeStop = includeStop };

    /// <summary>A copy of <paramref name="value"/> once its length and every item pass; else the error naming <paramref name="param"/>.</summary>
    private static T[] Checked<T>(IReadOnlyList<T> value, string param, int max, string items, Func<T, (object Actual, string Message)?> problem)
    {
        ArgumentNullException.ThrowIfNull(value, param);
        if (value.Count > max) throw new ArgumentOutOfRangeException(param, value.Count, $"at most {max} {items}, got {value.Count}");
        foreach (var item in value)
            if (problem(item) is { } bad) throw new ArgumentOutOfRangeException(param, bad.Actual, bad.Message);
        return value.ToArray();
    }
}
