using Tilt.Engine.Requests;


namespace Tilt.Engine.Decoding;

/// <summary>
/// A request's <see cref="StopSequences"/> compiled for matching. Stateless: the text being matched (and how much of it
/// was already scanned) belongs to the caller, so one matcher serves every sequence of a request.
/// </summary>
internal sealed class StopMatcher
{
    private readonly string[] _strings;
    private readonly int[] _tokens;

    private StopMatcher(StopSequences stop)
    {
        _strings = [.. stop.Strings];
        _tokens = [.. stop.TokenIds];
        IncludeStop = stop.IncludeStop;
        MaxLength = _strings.Length == 0 ? 0 : _strings.Max(s => s.Length);
    }

    /// <summary>The matcher of <paramref name="stop"/>, or null when there is nothing to match (no cost at all then).</summary>
    public static StopMatcher? For(StopSequences? stop) => stop is null || stop.IsEmpty ? null : new StopMatcher(stop);

    public bool IncludeStop { get; }

    /// <summary>Longest stop string in UTF-16 characters (0 without stop strings).</summary>
    public int MaxLength { get; }

    public bool HasStrings => _strings.Length > 0;

    /// <summary>True for a stop token id of the request (the model's own stop tokens are the caller's to check).</summary>
    public bool IsStopToken(int token) => Array.IndexOf(_tokens, token) >= 0;

    /// <summary>
    /// The first stop string in <paramref name="text"/> that ends after position <paramref name="from"/> (the text before it
    /// was scanned already); returns where the output ends (the match's start, or its end with <see cref="IncludeStop"/>),
    /// or -1 when there is none. The earliest start wins, so a stop inside a longer one is found first.
    /// </summary>
    public int Find(ReadOnlySpan<char> text, int from)
    {
        int best = -1, bestLength = 0;
        foreach (var s in _strings)
        {
            int lo = Math.Max(0, from - s.Length + 1);
            if (lo >= text.Length) continue;
            int at = text[lo..].IndexOf(s, StringComparison.Ordinal);
            if (at < 0) continue;
            at += lo;
            if (best < 0 || at < best || (at == best && s.Length > bestLength))
            {
                best = at;
                bestLength = s.Length;
            }
        }
        return best < 0 ? -1 : IncludeStop ? best + bestLength : best;
    }

    /// <summary>
    /// Characters at the end of <paramref name="text"/> that could still become the start of a stop string (the longest
    /// suffix that is a proper prefix of one): streaming holds exactly these back.
    /// </summary>
    public int Holdback(ReadOnlySpan<char> text)
    {
        int keep = 0;
        foreach (var s in _strings)
        {
            for (int k = Math.Min(s.Length - 1, text.Length); k > keep; k--)
            {
                if (text.EndsWith(s.AsSpan(0, k), StringComparison.Ordinal))
                {
                    keep = k;
                    break;
                }
            }
        }
        return keep;
    }
}

/// <summary>
/// The text of one output (or candidate) under a request's stop strings: appended delta by delta, scanned only where a new
/// match can end, cut at the first stop, and streamed without the tail that could still begin one. Without a matcher it is
/// a plain string builder and streams every delta whole.
/// </summary>
internal sealed class StopText(StopMatcher? matcher)
{
    private char[] _chars = new char[64];
    private int _length;
    private int _streamed;

    /// <summary>True once a stop string or stop token ended the text (later appends are ignored).</summary>
    public bool Stopped { get; private set; }

    public int Length => _length;

    public ReadOnlySpan<char> Span => _chars.AsSpan(0, _length);

    public override string ToString() => new(_chars, 0, _length);

    public void Clear()
    {
        _length = 0;
        _streamed = 0;
        Stopped = false;
    }

    /// <summary>Appends text; true when it completes a stop string (the text then ends at the stop).</summary>
    public bool Append(ReadOnlySpan<char> delta)
    {
        if (Stopped) return true;
        int before = _length;
        if (_length + delta.Length > _chars.Length) Array.Resize(ref _chars, Math.Max(_length + delta.Length, _chars.Length * 2));
        delta.CopyTo(_chars.AsSpan(_length));
        _length += delta.Length;
        if (matcher is not { HasStrings: true } || delta.Length == 0) return false;
        int end = matcher.Find(Span, before);
        if (end < 0) return false;
        _length = end;
        Stopped = true;
        return true;
    }

    /// <summary>
    /// A stop token ended the text; its own text started at <paramref name="tokenTextStart"/> and is dropped unless the
    /// request keeps stops.
    /// </summary>
    public void StopAtToken(int tokenTextStart)
    {
        if (!Stopped && matcher is { IncludeStop: false }) _length = Math.Min(_length, tokenTextStart);
        Stopped = true;
    }

    /// <summary>
    /// The text not streamed yet that may be streamed now: everything but a tail that could still begin a stop string, or
    /// everything once the text is stopped or <paramref name="final"/>.
    /// </summary>
    public string TakeStreamable(bool final = false) => TakeStreamable(null, final);

    /// <summary>
    /// <see cref="TakeStreamable(bool)"/> that returns <paramref name="lastDelta"/> itself (no copy) when it is exactly what
    /// is left to stream: the request without stop sequences allocates nothing more per token than before.
    /// </summary>
    public string TakeStreamable(string? lastDelta, bool final = false)
    {
        if (matcher is null && lastDelta is not null && _streamed + lastDelta.Length == _length)
        {
            _streamed = _length;
            return lastDelta;
        }
        int end = final || Stopped || matcher is not { HasStrings: true } ? _length : _length - matcher.Holdback(Span);
        if (end <= _streamed) return "";
        string s = new(_chars, _streamed, end - _streamed);
        _streamed = end;
        return s;
    }
}
