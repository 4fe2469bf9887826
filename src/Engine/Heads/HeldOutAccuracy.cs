using System.Globalization;
using System.Text.Json.Serialization;

namespace Tilt.Engine.Heads;

/// <summary>
/// How well a value head predicted the realized reward on held-out rollouts, for prefixes of <see cref="From"/> to
/// <see cref="To"/> tokens, beside the prefix reward r(x, y^t) on the same prefixes (header field
/// <c>heldOutByPrefixLength</c>, docs/head-file.md).
/// </summary>
public sealed record HeldOutAccuracy
{
    /// <summary>Shortest prefix length (tokens after the prompt) of the range.</summary>
    [JsonPropertyName("from"), JsonRequired] public int From { get; init; }

    /// <summary>Longest prefix length of the range.</summary>
    [JsonPropertyName("to"), JsonRequired] public int To { get; init; }

    /// <summary>Held-out prefixes in the range.</summary>
    [JsonPropertyName("rows")] public long Rows { get; init; }

    /// <summary>1 - SSE / SST of V against the realized reward; null when the rewards do not vary.</summary>
    [JsonPropertyName("rSquared")] public double? RSquared { get; init; }

    /// <summary>
    /// The squared correlation of the prefix reward r(x, y^t) with the realized reward r(x, y): the R^2 of the best
    /// affine predictor built from the prefix reward. Null when either does not vary.
    /// </summary>
    [JsonPropertyName("prefixRewardR2")] public double? PrefixRewardR2 { get; init; }

    /// <summary>The first problem of a list read from a file, naming the entry; null when valid.</summary>
    internal static string? Problem(IReadOnlyList<HeldOutAccuracy> list, HeadRole role)
    {
        if (role != HeadRole.Value) return "field 'heldOutByPrefixLength' is for value heads only";
        int previousTo = -1;
        for (int i = 0; i < list.Count; i++)
        {
            string at = $"field 'heldOutByPrefixLength[{i}]'";
            if (list[i] is not { } b) return $"{at} is null";
            if (b.From <= previousTo || b.To < b.From) return $"{at} covers {b.From}..{b.To}; ranges must be non-empty and ascend without overlap";
            if (b.Rows < 0) return $"{at}.rows is {b.Rows}; expected >= 0";
            if (b.RSquared is { } r2 && !(double.IsFinite(r2) && r2 <= 1)) return $"{at}.rSquared is {Format(r2)}; expected a finite number <= 1 or null";
            if (b.PrefixRewardR2 is { } c2 && !(c2 is >= 0 and <= 1)) return $"{at}.prefixRewardR2 is {Format(c2)}; expected 0..1 or null";
            previousTo = b.To;
        }

        return null;
    }

    /// <summary>
    /// The warning for a value head asked about prefixes of <paramref name="length"/> tokens when, there, it explains
    /// less of the realized reward's variance than the prefix reward does; null when it does not, or when the file has
    /// no metrics for that length (heads written before the field, imported heads).
    /// </summary>
    public static string? Warning(string headPath, HeadHeader header, int length)
    {
        ArgumentNullException.ThrowIfNull(header);
        if (header.Role != HeadRole.Value || header.HeldOutByPrefixLength is not { } list) return null;
        // A length past the last range (longer decoding than the rollouts) is judged by the last range.
        HeldOutAccuracy? bucket = list.FirstOrDefault(b => b.From <= length && length <= b.To) ?? (list.Count > 0 && length > list[^1].To ? list[^1] : null);
        if (bucket is not { RSquared: { } r2, PrefixRewardR2: { } baseline } || r2 >= baseline) return null;
        return $"warning: value head {headPath} explains R^2={Format(r2)} at length {length} (held-out prefixes of {bucket.From}-{bucket.To} tokens), " +
            $"below the prefix reward's {Format(baseline)}; the prefix reward may steer better (docs/training.md)";
    }

    private static string Format(double x) => x.ToString("0.####", CultureInfo.InvariantCulture);
}
