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
        init
        {
            ArgumentNullException.ThrowIfNull(value, nameof(Strings));
            if (value.Count > MaxStrings)
                throw new ArgumentOutOfRangeException(nameof(Strings), value.Count, $"at most {MaxStrings} stop strings, got {value.Count}");
            foreach (var s in value)
            {
                int bytes = s is null ? 0 : Encoding.UTF8.GetByteCount(s);
                if (bytes is < 1 or > MaxStringBytes)
                    throw new ArgumentOutOfRangeException(nameof(Strings), bytes, $"each stop string must be 1 to {MaxStringBytes} UTF-8 bytes, got {bytes}");
            }
            field = value.ToArray();
        }
    } = [];

    /// <summary>Token ids that end a sequence like EOS (at most <see cref="MaxTokenIds"/>, each >= 0). Defaults to none.</summary>
    public IReadOnlyList<int> TokenIds
    {
        get;
        init
        {
            ArgumentNullException.ThrowIfNull(value, nameof(TokenIds));
            if (value.Count > MaxTokenIds)
                throw new ArgumentOutOfRangeException(nameof(TokenIds), value.Count, $"at most {MaxTokenIds} stop token ids, got {value.Count}");
            foreach (int id in value)
                if (id < 0) throw new ArgumentOutOfRangeException(nameof(TokenIds), id, $"stop token ids must be >= 0, got {id}");
            field = value.ToArray();
        }
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
}
