namespace Tilt.Server;

/// <summary>
/// OpenAI's <c>stop</c>: text ends before the first stop sequence. Streaming holds back a tail that could still become
/// a stop sequence, so no chunk ever carries text past one.
/// </summary>
internal sealed class StopScanner(IReadOnlyList<string> stops)
{
    private string _held = "";

    public bool Stopped { get; private set; }

    /// <summary>The text of <paramref name="delta"/> that can be sent now.</summary>
    public string Push(string delta)
    {
        if (Stopped) return "";
        if (stops.Count == 0) return delta;
        string s = _held + delta;
        int cut = FirstStop(s, stops);
        if (cut >= 0)
        {
            Stopped = true;
            _held = "";
            return s[..cut];
        }
        int keep = 0;
        foreach (var stop in stops)
            for (int k = Math.Min(stop.Length - 1, s.Length); k > keep; k--)
                if (s.EndsWith(stop[..k], StringComparison.Ordinal)) { keep = k; break; }
        _held = s[^keep..];
        return s[..^keep];
    }

    /// <summary>What was held back, at the end of the text.</summary>
    public string Flush()
    {
        string rest = Stopped ? "" : _held;
        _held = "";
        return rest;
    }

    /// <summary>The text up to the first stop sequence, and whether one was found.</summary>
    public static (string Text, bool Stopped) Truncate(string text, IReadOnlyList<string> stops)
    {
        int cut = FirstStop(text, stops);
        return cut >= 0 ? (text[..cut], true) : (text, false);
    }

    private static int FirstStop(string text, IReadOnlyList<string> stops)
    {
        int best = -1;
        foreach (var stop in stops)
        {
            int i = text.IndexOf(stop, StringComparison.Ordinal);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        return best;
    }
}
