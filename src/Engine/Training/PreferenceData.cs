using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Tilt.Engine.IO;

using Tilt.Engine.Text;

namespace Tilt.Engine.Training;

/// <summary>A preference: for the prompt, <see cref="Chosen"/> was preferred over <see cref="Rejected"/> [M20].</summary>
public sealed record PreferencePair(string Prompt, string Chosen, string Rejected);

/// <summary>A text with a binary label (e.g. safe / unsafe) for a classifier reward head [M20].</summary>
public sealed record LabeledText(string Prompt, string Text, bool Label);

/// <summary>
/// JSON-lines datasets for reward heads. Pairs: one object per line with string fields "prompt", "chosen",
/// "rejected" (other fields, such as the rewards <c>tilt data pairs</c> writes, are ignored). Labels: "prompt", "text"
/// and "label" (true/false or 1/0). Blank lines are skipped; every error names the file and line.
/// </summary>
public static class PreferenceData
{
    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static IReadOnlyList<PreferencePair> ReadPairs(string path) =>
        Read(path, (o, file, line) => new PreferencePair(
            JsonLines.GetString(o, "prompt", file, line), JsonLines.GetString(o, "chosen", file, line), JsonLines.GetString(o, "rejected", file, line)));

    public static IReadOnlyList<LabeledText> ReadLabels(string path) =>
        Read(path, (o, file, line) => new LabeledText(JsonLines.GetString(o, "prompt", file, line), JsonLines.GetString(o, "text", file, line), Label(o, file, line)));

    /// <summary>Writes one JSON object per line (UTF-8, atomically via a temporary file).</summary>
    public static void WriteLines<T>(string path, IEnumerable<T> items)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(items);
        AtomicFile.Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
            foreach (var item in items) writer.WriteLine(JsonSerializer.Serialize(item, Json));
        });
    }

    private static IReadOnlyList<T> Read<T>(string path, Func<JsonElement, string, int, T> parse)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new TiltException($"{full}: file not found");
        string[] lines = TextFile.ReadLines(full, "data file");
        var items = new List<T>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Trim().Length == 0) continue;
            items.Add(parse(JsonLines.Parse(lines[i], full, i + 1), full, i + 1));
        }
        if (items.Count == 0) throw new TiltException($"{full}: the file holds no examples");
        return items;
    }

    private static bool Label(JsonElement o, string file, int line)
    {
        if (!o.TryGetProperty("label", out var value)) throw new TiltException($"{file}:{line}: missing field \"label\"");
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number when value.TryGetInt32(out int i) && i is 0 or 1 => i == 1,
            _ => throw new TiltException($"{file}:{line}: field \"label\" must be true, false, 1 or 0, got {value.GetRawText()}"),
        };
    }
}
