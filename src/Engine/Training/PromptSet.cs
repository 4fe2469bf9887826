using System.Text.Json;
using Tilt.Engine.Models;

using Tilt.Engine.Text;

namespace Tilt.Engine.Training;

/// <summary>Prompts to collect rollouts from: built-in story openings for the default model, or a user's file.</summary>
public static class PromptSet
{
    /// <summary>Openings of children's stories, the kind of text stories260K was trained on.</summary>
    public static IReadOnlyList<string> StoryOpenings { get; } =
    [
        "Once upon a time",
        "One day",
        "There was a little",
        "Lily and Tom",
        "Once upon a time, there was a little girl named Lily",
        "Tom had a big red ball",
        "The sun was shining",
        "In a small house",
        "Mom said",
        "The little dog",
        "Sara wanted to",
        "It was a rainy day",
    ];

    /// <summary>
    /// The prompts used when none are given: the empty prompt for a tabular model (its vocabulary is its own), the
    /// story openings otherwise.
    /// </summary>
    public static IReadOnlyList<string> Default(ModelInfo model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Kind == ModelKind.Tabular ? [""] : StoryOpenings;
    }

    /// <summary>
    /// Reads prompts from a file: JSON lines with a "prompt" string field when the file ends in .jsonl or its first
    /// non-blank character is '{'; otherwise one prompt per line (blank lines are skipped; a prompt cannot contain a
    /// line break in this form). Errors name the file and line.
    /// </summary>
    public static IReadOnlyList<string> Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        string[] lines = TextFile.ReadLines(full, "prompt file");
        bool jsonl = full.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)
                     || lines.FirstOrDefault(l => l.Trim().Length > 0)?.TrimStart().StartsWith('{') == true;
        var prompts = new List<string>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Trim().Length == 0) continue;
            prompts.Add(jsonl ? JsonLines.ReadString(lines[i], "prompt", full, i + 1) : lines[i]);
        }
        if (prompts.Count == 0) throw new TiltException($"{full}: the prompt file holds no prompts");
        return prompts;
    }
}

/// <summary>Field access for JSON-lines files with errors that name the file, line and field.</summary>
internal static class JsonLines
{
    public static JsonElement Parse(string line, string file, int lineNumber)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new TiltException($"{file}:{lineNumber}: expected a JSON object, got {document.RootElement.ValueKind}");
            return document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new TiltException($"{file}:{lineNumber}: not valid JSON: {e.Message}", e);
        }
    }

    public static string ReadString(string line, string field, string file, int lineNumber) =>
        GetString(Parse(line, file, lineNumber), field, file, lineNumber);

    public static string GetString(JsonElement o, string field, string file, int lineNumber)
    {
        if (!o.TryGetProperty(field, out var value))
            throw new TiltException($"{file}:{lineNumber}: missing field \"{field}\"");
        if (value.ValueKind != JsonValueKind.String)
            throw new TiltException($"{file}:{lineNumber}: field \"{field}\" must be a string, got {value.ValueKind}");
        return value.GetString()!;
    }
}
