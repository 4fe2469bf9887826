using System.Text.Json;

namespace Tilt.Engine.Evaluation;

/// <summary>Prompts for evaluation and training: built-in story openings, or a text (one per line) or JSONL file.</summary>
public static class PromptSet
{
    /// <summary>Story openings for TinyStories-style models such as the default stories260K.</summary>
    public static IReadOnlyList<string> DefaultStoryPrompts { get; } =
    [
        "Once upon a time",
        "One day, a little girl named Lily",
        "There was a big dog",
        "Tom and his mom went to the park",
        "The sun was shining and",
        "A small bird lived in a tree",
        "Ben had a red ball",
        "In a little house there was",
    ];

    /// <summary>
    /// Reads prompts: a .jsonl file holds one object per line with a "prompt" string; any other file holds one
    /// prompt per line (blank lines skipped). Errors name the file and line.
    /// </summary>
    public static IReadOnlyList<string> Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new TiltException($"{full}: prompt file not found");
        var prompts = new List<string>();
        bool jsonl = full.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);
        int lineNumber = 0;
        foreach (string line in File.ReadLines(full))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (!jsonl)
            {
                prompts.Add(line.TrimEnd());
                continue;
            }
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("prompt", out var p) || p.ValueKind != JsonValueKind.String)
                    throw new TiltException($"{full}:{lineNumber}: each line must be an object with a \"prompt\" string");
                prompts.Add(p.GetString()!);
            }
            catch (JsonException e)
            {
                throw new TiltException($"{full}:{lineNumber}: invalid JSON: {e.Message}", e);
            }
        }
        if (prompts.Count == 0) throw new TiltException($"{full}: no prompts");
        return prompts;
    }
}
