using System.Text.Json;
using Tilt.Engine.IO;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// The parts of a Hugging Face tokenizer.json every model type shares: the post_processor (special tokens around a
/// text and a pair), the padding id and the added tokens.
/// </summary>
internal static class TokenizerJson
{
    public static JsonDocument Parse(string path)
    {
        try
        {
            return JsonDocument.Parse(InputFile.ReadAllBytes(path, "tokenizer file"), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new TiltException($"{path}: not valid JSON: {e.Message}", e);
        }
    }

    public static bool? Flag(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : null;

    public static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>added_tokens: content -> id (special tokens such as &lt;s&gt;, [CLS], &lt;pad&gt;).</summary>
    public static Dictionary<string, int> AddedTokens(string path, JsonElement root)
    {
        var tokens = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!root.TryGetProperty("added_tokens", out var added) || added.ValueKind != JsonValueKind.Array) return tokens;
        foreach (var token in added.EnumerateArray())
        {
            if (Text(token, "content") is not { } content || !token.TryGetProperty("id", out var id) || !id.TryGetInt32(out int value) || value < 0)
                throw new TiltException($"{path}: added_tokens holds an entry without content or a valid id: {token}");
            tokens[content] = value;
        }
        return tokens;
    }

    /// <summary>
    /// The padding id: padding.pad_id when the file sets padding, else the id of &lt;pad&gt; or [PAD] in the added
    /// tokens or the vocabulary, else 0.
    /// </summary>
    public static int PaddingId(JsonElement root, Func<string, int?> lookup)
    {
        if (root.TryGetProperty("padding", out var padding) && padding.ValueKind == JsonValueKind.Object
            && padding.TryGetProperty("pad_id", out var id) && id.TryGetInt32(out int padId) && padId >= 0)
            return padId;
        return lookup("<pad>") ?? lookup("[PAD]") ?? 0;
    }

    /// <summary>
    /// The post_processor as a template: BertProcessing, RobertaProcessing, TemplateProcessing, the first of these in a
    /// Sequence; without one, the texts alone (segment 1 for a pair's second text, as the library does).
    /// </summary>
    public static TokenTemplate Template(string path, JsonElement root, TokenTemplate? fallback = null)
    {
        if (!root.TryGetProperty("post_processor", out var processor) || processor.ValueKind != JsonValueKind.Object)
            return fallback ?? Plain;
        return FromProcessor(path, processor) ?? fallback ?? Plain;
    }

    private static TokenTemplate Plain { get; } = new([new(0, [], 0)], [new(0, [], 0), new(1, [], 1)]);

    private static TokenTemplate? FromProcessor(string path, JsonElement processor)
    {
        switch (Text(processor, "type"))
        {
            case "BertProcessing":
                return TokenTemplate.Bert(SpecialId(path, processor, "cls"), SpecialId(path, processor, "sep"));
            case "RobertaProcessing":
                return TokenTemplate.Roberta(SpecialId(path, processor, "cls"), SpecialId(path, processor, "sep"));
            case "TemplateProcessing":
                var specials = processor.TryGetProperty("special_tokens", out var s) && s.ValueKind == JsonValueKind.Object ? s : default;
                return new TokenTemplate(Pieces(path, processor, "single", specials), Pieces(path, processor, "pair", specials));
            case "Sequence" when processor.TryGetProperty("processors", out var list) && list.ValueKind == JsonValueKind.Array:
                foreach (var inner in list.EnumerateArray())
                    if (inner.ValueKind == JsonValueKind.Object && FromProcessor(path, inner) is { } template) return template;
                return null;
            default:
                return null; // ByteLevel and the like change offsets only, not ids
        }
    }

    /// <summary>"cls": ["[CLS]", 101] -> 101.</summary>
    private static int SpecialId(string path, JsonElement processor, string name) =>
        processor.TryGetProperty(name, out var pair) && pair.ValueKind == JsonValueKind.Array && pair.GetArrayLength() == 2
        && pair[1].TryGetInt32(out int id) && id >= 0
            ? id
            : throw new TiltException($"{path}: post_processor.{name} is not [token, id]");

    private static TemplatePiece[] Pieces(string path, JsonElement processor, string name, JsonElement specials)
    {
        if (!processor.TryGetProperty(name, out var list) || list.ValueKind != JsonValueKind.Array)
            throw new TiltException($"{path}: post_processor (TemplateProcessing) has no '{name}' list");
        var pieces = new List<TemplatePiece>();
        foreach (var item in list.EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out var sequence))
            {
                int which = Text(sequence, "id") switch
                {
                    "A" => 0,
                    "B" => 1,
                    var other => throw new TiltException($"{path}: post_processor.{name}: unknown sequence '{other}' (A or B)"),
                };
                pieces.Add(new TemplatePiece(which, [], TypeId(sequence)));
            }
            else if (item.TryGetProperty("SpecialToken", out var special) && Text(special, "id") is { } token)
            {
                if (specials.ValueKind != JsonValueKind.Object || !specials.TryGetProperty(token, out var entry)
                    || !entry.TryGetProperty("ids", out var ids) || ids.ValueKind != JsonValueKind.Array)
                    throw new TiltException($"{path}: post_processor.{name} names special token '{token}', which special_tokens does not define");
                pieces.Add(new TemplatePiece(-1, [.. ids.EnumerateArray().Select(i => i.GetInt32())], TypeId(special)));
            }
            else
            {
                throw new TiltException($"{path}: post_processor.{name} holds an item that is neither Sequence nor SpecialToken: {item}");
            }
        }
        return [.. pieces];
    }

    private static int TypeId(JsonElement piece) => piece.TryGetProperty("type_id", out var t) && t.TryGetInt32(out int id) ? id : 0;
}
