using System.Collections.Concurrent;
using System.Text.Json;
using Tilt.Engine.IO;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// One piece of a post-processing template: the special token ids to insert (<see cref="Sequence"/> -1), or the
/// first (0) or second (1) text; <see cref="TypeId"/> is the segment id of every token of the piece.
/// </summary>
internal readonly record struct TemplatePiece(int Sequence, int[] Ids, int TypeId);

/// <summary>
/// How a tokenizer frames one text and a pair with special tokens (Hugging Face's post_processor): BERT's
/// <c>[CLS] A [SEP]</c> / <c>[CLS] A [SEP] B [SEP]</c> with segment 1 over <c>B [SEP]</c>, RoBERTa's
/// <c>&lt;s&gt; A &lt;/s&gt;</c> / <c>&lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;</c> with segment 0 throughout, or any TemplateProcessing.
/// </summary>
internal sealed record TokenTemplate(TemplatePiece[] Single, TemplatePiece[] Pair)
{
    public static TokenTemplate Bert(int cls, int sep) => new(
        [new(-1, [cls], 0), new(0, [], 0), new(-1, [sep], 0)],
        [new(-1, [cls], 0), new(0, [], 0), new(-1, [sep], 0), new(1, [], 1), new(-1, [sep], 1)]);

    public static TokenTemplate Roberta(int cls, int sep) => new(
        [new(-1, [cls], 0), new(0, [], 0), new(-1, [sep], 0)],
        [new(-1, [cls], 0), new(0, [], 0), new(-1, [sep, sep], 0), new(1, [], 0), new(-1, [sep], 0)]);

    /// <summary>Special tokens the template adds around one text (or a pair).</summary>
    public static int Specials(TemplatePiece[] pieces) => pieces.Where(p => p.Sequence < 0).Sum(p => p.Ids.Length);
}

/// <summary>
/// Tokenization for an ONNX text model: the text's ids (<see cref="Words"/>, by the concrete tokenizer), framed by the
/// model's special tokens (<see cref="TokenTemplate"/>) and cut to a maximum length, since encoder models have a fixed
/// number of positions. Immutable and thread-safe; loaded once per file and shared (<see cref="Load"/>).
/// </summary>
internal abstract class TextTokenizer
{
    private static readonly ConcurrentDictionary<string, Lazy<TextTokenizer>> Cache = new(StringComparer.Ordinal);

    protected TextTokenizer(string path, int vocabularySize, int paddingId, TokenTemplate template)
    {
        Path = path;
        VocabularySize = vocabularySize;
        PaddingId = paddingId;
        Template = template;
    }

    /// <summary>The tokenizer file (full path).</summary>
    public string Path { get; }

    /// <summary>Ids run from 0 to VocabularySize - 1.</summary>
    public int VocabularySize { get; }

    /// <summary>The id padding fills rows with (RoBERTa-style graphs derive positions from it, so it must be the model's).</summary>
    public int PaddingId { get; }

    public TokenTemplate Template { get; }

    /// <summary>
    /// The tokenizer of <paramref name="path"/>: a WordPiece vocab.txt, or a Hugging Face tokenizer.json whose model is
    /// WordPiece, BPE or Unigram (with its SentencePiece model file beside it). Loaded on first use and shared; a file that fails to load is not cached.
    /// </summary>
    /// <exception cref="TiltException">The file is missing, unreadable, or a tokenizer this engine does not support (named).</exception>
    public static TextTokenizer Load(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        var lazy = Cache.GetOrAdd(full, p => new Lazy<TextTokenizer>(() => Read(p), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            Cache.TryRemove(new KeyValuePair<string, Lazy<TextTokenizer>>(full, lazy));
            throw;
        }
    }

    /// <summary>The ids of <paramref name="text"/> without special tokens, at most <paramref name="maxTokens"/>, its end cut off.</summary>
    protected abstract IReadOnlyList<int> Words(string text, int maxTokens);

    /// <summary>The single-text template around the ids of <paramref name="text"/>, at most <paramref name="maxLength"/> ids.</summary>
    public int[] Encode(string text, int maxLength)
    {
        int budget = Math.Max(0, maxLength - TokenTemplate.Specials(Template.Single));
        var ids = new List<int>(maxLength);
        var words = text.Length == 0 || budget == 0 ? [] : Words(text, budget);
        foreach (var piece in Template.Single) ids.AddRange(piece.Sequence < 0 ? piece.Ids : words);
        return [.. ids];
    }

    /// <summary>
    /// The pair template, at most <paramref name="maxLength"/> ids, with the template's segment ids. Too long a pair
    /// keeps the whole second text when it fits (it is what a reward model judges) and the END of the first text (the
    /// part next to the second); a second text that alone is too long keeps its beginning and drops the first text.
    /// </summary>
    public (int[] Ids, int[] Segments) EncodePair(string first, string second, int maxLength)
    {
        int budget = Math.Max(0, maxLength - TokenTemplate.Specials(Template.Pair));
        IReadOnlyList<int> b = second.Length == 0 || budget == 0 ? [] : Words(second, budget);
        IReadOnlyList<int> a = first.Length == 0 ? [] : Words(first, int.MaxValue);
        int keepA = Math.Min(a.Count, budget - b.Count);
        var ids = new List<int>(maxLength);
        var segments = new List<int>(maxLength);
        foreach (var piece in Template.Pair)
        {
            IEnumerable<int> part = piece.Sequence switch
            {
                < 0 => piece.Ids,
                0 => a.Skip(a.Count - keepA),
                _ => b,
            };
            int before = ids.Count;
            ids.AddRange(part);
            segments.AddRange(Enumerable.Repeat(piece.TypeId, ids.Count - before));
        }
        return ([.. ids], [.. segments]);
    }

    /// <summary>A single-text row of <paramref name="maxLength"/> ids whose text is the largest id throughout: the probe of a graph.</summary>
    public int[] Probe(int maxLength)
    {
        int budget = Math.Max(0, maxLength - TokenTemplate.Specials(Template.Single));
        var ids = new List<int>(maxLength);
        foreach (var piece in Template.Single) ids.AddRange(piece.Sequence < 0 ? piece.Ids : Enumerable.Repeat(VocabularySize - 1, budget));
        return [.. ids];
    }

    private static TextTokenizer Read(string path)
    {
        InputFile.Check(path, "tokenizer file");
        try
        {
            if (!System.IO.Path.GetFileName(path).EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return WordPieceTextTokenizer.FromVocabulary(path);
            using var document = TokenizerJson.Parse(path);
            var root = document.RootElement;
            if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw new TiltException($"{path}: not a tokenizer.json (no model object)");
            string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
            return type switch
            {
                "WordPiece" => WordPieceTextTokenizer.FromTokenizerJson(path, root),
                "BPE" => BpeTextTokenizer.FromTokenizerJson(path, root),
                "Unigram" => UnigramTextTokenizer.FromTokenizerJson(path, root),
                _ => throw new TiltException(
                    $"{path}: tokenizer model type '{type}' is not supported (WordPiece, as in BERT; BPE, as in RoBERTa or GPT-2; " +
                    "Unigram, as in DeBERTa-v3, with its SentencePiece model file beside it)"),
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{path}: cannot read tokenizer file: {e.Message}", e);
        }
    }
}
