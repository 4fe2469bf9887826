using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tilt.Engine.Models.Tabular;

/// <summary>
/// The JSON form of a tabular model (docs/tabular-model.md). A first-order Markov chain over a small
/// vocabulary: the next-token distribution depends only on the last token.
/// </summary>
public sealed class TabularModelFile
{
    public const string CurrentFormat = "tilt-tabular/1";

    /// <summary>Must be "tilt-tabular/1".</summary>
    [JsonPropertyName("format")] public string? Format { get; set; }

    [JsonPropertyName("description")] public string? Description { get; set; }

    /// <summary>Token strings; a token's id is its index. Tokens contain no whitespace.</summary>
    [JsonPropertyName("vocabulary")] public List<string>? Vocabulary { get; set; }

    /// <summary>The token that ends a response.</summary>
    [JsonPropertyName("eos")] public string? Eos { get; set; }

    /// <summary>Next-token distribution after an empty prompt.</summary>
    [JsonPropertyName("start")] public Dictionary<string, double>? Start { get; set; }

    /// <summary>For every non-EOS token, the distribution of the token that follows it.</summary>
    [JsonPropertyName("transitions")] public Dictionary<string, Dictionary<string, double>>? Transitions { get; set; }

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public static TabularModelFile Parse(string json, string path)
    {
        try
        {
            return JsonSerializer.Deserialize<TabularModelFile>(json, JsonOptions)
                   ?? throw new ModelLoadException(path, "the JSON is null");
        }
        catch (JsonException e)
        {
            throw new ModelLoadException(path, $"invalid tabular model JSON{(e.Path is { } p ? $" at {p}" : "")}: {e.Message}", e);
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);
}
