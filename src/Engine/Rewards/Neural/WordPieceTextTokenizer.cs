using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Tilt.Engine.IO;
using Tilt.Engine.Text;
using Microsoft.ML.Tokenizers;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// BERT-style tokenization for an ONNX text model (Microsoft.ML.Tokenizers' <see cref="BertTokenizer"/>): WordPiece
/// from a <c>vocab.txt</c> (one token per line, the line number is the id) or from a Hugging Face <c>tokenizer.json</c>
/// whose model is WordPiece. Every encoding is <c>[CLS] text [SEP]</c> (or <c>[CLS] a [SEP] b [SEP]</c> for a pair),
/// cut to a maximum length: BERT models have a fixed number of positions, so longer texts are truncated, keeping
/// their beginning. Immutable and thread-safe; loaded once per file and shared (<see cref="Load"/>).
/// </summary>
internal sealed class WordPieceTextTokenizer
{
    private static readonly ConcurrentDictionary<string, Lazy<WordPieceTextTokenizer>> Cache = new(StringComparer.Ordinal);

    private readonly BertTokenizer _bert;

    private WordPieceTextTokenizer(string path, BertTokenizer bert, int vocabularySize)
    {
        Path = path;
        _bert = bert;
        VocabularySize = vocabularySize;
    }

    /// <summary>The vocabulary file (full path).</summary>
    public string Path { get; }

    /// <summary>Ids run from 0 to VocabularySize - 1.</summary>
    public int VocabularySize { get; }

    public int PaddingId => _bert.PaddingTokenId;

    public int ClassificationId => _bert.ClassificationTokenId;

    public int SeparatorId => _bert.SeparatorTokenId;

    /// <summary>
    /// The tokenizer of <paramref name="path"/> (a vocab.txt or a tokenizer.json), loaded on first use and shared by
    /// every reward of the process. A file that fails to load is not cached, so a fixed file loads on the next try.
    /// </summary>
    /// <exception cref="TiltException">The file is missing, unreadable or not a WordPiece vocabulary.</exception>
    public static WordPieceTextTokenizer Load(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        var lazy = Cache.GetOrAdd(full, p => new Lazy<WordPieceTextTokenizer>(() => Read(p), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            Cache.TryRemove(new KeyValuePair<string, Lazy<WordPieceTextTokenizer>>(full, lazy));
            throw;
        }
    }

    /// <summary>[CLS] ids(text) [SEP], at most <paramref name="maxLength"/> ids (&gt;= 2), the text's end cut off.</summary>
    public int[] Encode(string text, int maxLength)
    {
        IReadOnlyList<int> ids = Words(text, maxLength - 2);
        var row = new int[ids.Count + 2];
        row[0] = ClassificationId;
        for (int i = 0; i < ids.Count; i++)
        {
            row[i + 1] = ids[i];
        }

        row[^1] = SeparatorId;
        return row;
    }

    /// <summary>
    /// [CLS] first [SEP] second [SEP] with segment ids 0 for [CLS] first [SEP] and 1 for second [SEP], at most
    /// <paramref name="maxLength"/> ids (&gt;= 3). Too long a pair keeps the whole second text when it fits (it is
    /// what a reward model judges) and the END of the first text (the part next to the second); a second text
    /// that alone is too long keeps its beginning and drops the first text.
    /// </summary>
    public (int[] Ids, int[] Segments) EncodePair(string first, string second, int maxLength)
    {
        int budget = maxLength - 3;
        IReadOnlyList<int> b = Words(second, budget);
        IReadOnlyList<int> a = Words(first, int.MaxValue);
        int keepA = Math.Min(a.Count, budget - b.Count);
        int length = keepA + b.Count + 3;
        var ids = new int[length];
        var segments = new int[length];
        int at = 0;
        ids[at++] = ClassificationId;
        for (int i = a.Count - keepA; i < a.Count; i++)
        {
            ids[at++] = a[i];
        }

        ids[at++] = SeparatorId;
        int secondStart = at;
        for (int i = 0; i < b.Count; i++)
        {
            ids[at++] = b[i];
        }

        ids[at] = SeparatorId;
        segments.AsSpan(secondStart).Fill(1);
        return (ids, segments);
    }

    private IReadOnlyList<int> Words(string text, int maxTokens) =>
        maxTokens <= 0 || text.Length == 0
            ? []
            : _bert.EncodeToIds(text, maxTokens, addSpecialTokens: false, out _, out _);

    private static WordPieceTextTokenizer Read(string path)
    {
        InputFile.Check(path, "tokenizer file");

        try
        {
            return System.IO.Path.GetFileName(path).EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                ? ReadTokenizerJson(path)
                : ReadVocabulary(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{path}: cannot read tokenizer file: {e.Message}", e);
        }
    }

    /// <summary>vocab.txt; casing from a tokenizer_config.json beside it (do_lower_case), else lower case as BERT uncased.</summary>
    private static WordPieceTextTokenizer ReadVocabulary(string path)
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
            using var document = ParseJson(config);
            if (document.RootElement.TryGetProperty("do_lower_case", out var flag) && flag.ValueKind is JsonValueKind.True or JsonValueKind.False)
            {
                lowerCase = flag.GetBoolean();
            }
        }

        return Create(path, string.Join('\n', lines), lines.Length, new BertOptions { LowerCaseBeforeTokenization = lowerCase });
    }

    /// <summary>A Hugging Face tokenizer.json with a WordPiece model (BERT, MiniLM, ...); its vocabulary must be ids 0..n-1.</summary>
    private static WordPieceTextTokenizer ReadTokenizerJson(string path)
    {
        using var document = ParseJson(path);
        var root = document.RootElement;
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
            lowerCase = Flag(normalizer, "lowercase") ?? lowerCase;
            stripAccents = Flag(normalizer, "strip_accents");
            cjk = Flag(normalizer, "handle_chinese_chars") ?? cjk;
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

        return Create(path, text.ToString(0, text.Length - 1), tokens.Count, options);
    }

    private static WordPieceTextTokenizer Create(string path, string vocabulary, int size, BertOptions options)
    {
        try
        {
            using var stream = new MemoryStream(Encoding.UTF8.GetBytes(vocabulary));
            return new WordPieceTextTokenizer(path, BertTokenizer.Create(stream, options), size);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            // The library refuses a vocabulary without [UNK], [CLS], [SEP], [PAD] or [MASK].
            throw new TiltException($"{path}: not a BERT WordPiece vocabulary: {e.Message}", e);
        }
    }

    private static JsonDocument ParseJson(string path)
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

    private static bool? Flag(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : null;
}
