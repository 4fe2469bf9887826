using System.Text;
using System.Text.Json;
using Tilt.Engine.Text;
using Microsoft.ML.Tokenizers;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// BERT-style WordPiece tokenization for an ONNX text model (Microsoft.ML.Tokenizers' <see cref="BertTokenizer"/>)
/// from a <c>vocab.txt</c> (one token per line, the line number is the id) or from a Hugging Face <c>tokenizer.json</c>
/// whose model is WordPiece. Texts are framed <c>[CLS] text [SEP]</c> (or <c>[CLS] a [SEP] b [SEP]</c> for a pair), or
/// as the tokenizer.json's post_processor says. Immutable and thread-safe; load through <see cref="TextTokenizer.Load"/>.
/// </summary>
internal sealed class WordPieceTextTokenizer : TextTokenizer
{
    private readonly BertTokenizer _bert;

    private WordPieceTextTokenizer(string path, BertTokenizer bert, int vocabularySize, TokenTemplate template)
        : base(path, vocabularySize, bert.PaddingTokenId, template)
    {
        _bert = bert;
    }

    public int ClassificationId => _bert.ClassificationTokenId;

    public int SeparatorId => _bert.SeparatorTokenId;

    /// <summary>A WordPiece file through <see cref="TextTokenizer.Load"/> (which also reads tokenizer.json files of other model types).</summary>
    public static new WordPieceTextTokenizer Load(string path) =>
        TextTokenizer.Load(path) as WordPieceTextTokenizer ?? throw new TiltException($"{path}: not a WordPiece tokenizer");

    protected override IReadOnlyList<int> Words(string text, int maxTokens) =>
        _bert.EncodeToIds(text, maxTokens, addSpecialTokens: false, out _, out _);

    /// <summary>vocab.txt; casing from a tokenizer_config.json beside it (do_lower_case), else lower case as BERT uncased.</summary>
    internal static WordPieceTextTokenizer FromVocabulary(string path)
    {
        string[] lines = TextFile.ReadLines(path, "tokenizer file");
        if (lines.Length == 0 || lines.Any(l => l.Contains('\0')))
        {
            throw new TiltException($"{path}: not a WordPiece vocabulary (expected one token per line, UTF-8 text)");
        }

        bool lowerCase = true;
        string config = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path)!, "tokenizer_config.json");
        if (File.Exists(config))
        {
            using var document = TokenizerJson.Parse(config);
            if (document.RootElement.TryGetProperty("do_lower_case", out var flag) && flag.ValueKind is JsonValueKind.True or JsonValueKind.False)
            {
                lowerCase = flag.GetBoolean();
            }
        }

        return Create(path, string.Join('\n', lines), lines.Length, new BertOptions { LowerCaseBeforeTokenization = lowerCase }, null);
    }

    /// <summary>A Hugging Face tokenizer.json with a WordPiece model (BERT, MiniLM, ...); its vocabulary must be ids 0..n-1.</summary>
    internal static WordPieceTextTokenizer FromTokenizerJson(string path, JsonElement root)
    {
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object
            || !model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
        {
            throw new TiltException($"{path}: not a tokenizer.json (no model.vocab object)");
        }

        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
        if (type != "WordPiece")
        {
            throw new TiltException(
                $"{path}: tokenizer model type '{type}' is not supported (only WordPiece, as in BERT; pass tokenizer=vocab.txt of a BERT-style model)");
        }

        var tokens = new Dictionary<int, string>();
        foreach (var entry in vocab.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out int id) || id < 0 || !tokens.TryAdd(id, entry.Name))
            {
                throw new TiltException($"{path}: model.vocab entry '{entry.Name}' has a bad or repeated id");
            }
        }

        if (tokens.Count == 0 || tokens.Keys.Max() != tokens.Count - 1)
        {
            throw new TiltException($"{path}: model.vocab ids are not 0..{tokens.Count - 1}");
        }

        bool lowerCase = true;
        bool? stripAccents = null;
        bool cjk = true;
        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind == JsonValueKind.Object)
        {
            lowerCase = TokenizerJson.Flag(normalizer, "lowercase") ?? lowerCase;
            stripAccents = TokenizerJson.Flag(normalizer, "strip_accents");
            cjk = TokenizerJson.Flag(normalizer, "handle_chinese_chars") ?? cjk;
        }

        var options = new BertOptions
        {
            LowerCaseBeforeTokenization = lowerCase,
            RemoveNonSpacingMarks = stripAccents ?? lowerCase, // BertNormalizer: strip_accents null follows lowercase
            IndividuallyTokenizeCjk = cjk,
        };
        if (model.TryGetProperty("unk_token", out var unk) && unk.ValueKind == JsonValueKind.String)
        {
            options.UnknownToken = unk.GetString()!;
        }

        if (model.TryGetProperty("continuing_subword_prefix", out var prefix) && prefix.ValueKind == JsonValueKind.String)
        {
            options.ContinuingSubwordPrefix = prefix.GetString()!;
        }

        var text = new StringBuilder();
        for (int id = 0; id < tokens.Count; id++)
        {
            text.Append(tokens[id]).Append('\n');
        }

        return Create(path, text.ToString(0, text.Length - 1), tokens.Count, options, root);
    }

    /// <summary>The tokenizer, framed as the tokenizer.json's post_processor says when there is one, else as BERT.</summary>
    private static WordPieceTextTokenizer Create(string path, string vocabulary, int size, BertOptions options, JsonElement? root)
    {
        BertTokenizer bert;
        try
        {
            using var stream = new MemoryStream(Encoding.UTF8.GetBytes(vocabulary));
            bert = BertTokenizer.Create(stream, options);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            // The library refuses a vocabulary without [UNK], [CLS], [SEP], [PAD] or [MASK].
            throw new TiltException($"{path}: not a BERT WordPiece vocabulary: {e.Message}", e);
        }

        var bertTemplate = TokenTemplate.Bert(bert.ClassificationTokenId, bert.SeparatorTokenId);
        return new WordPieceTextTokenizer(path, bert, size, root is { } json ? TokenizerJson.Template(path, json, bertTemplate) : bertTemplate);
    }
}
