using System.Text.Json;
using Microsoft.ML.Tokenizers;
using Tilt.Engine.IO;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// Unigram (SentencePiece) tokenization for a tokenizer.json whose model is Unigram (DeBERTa-v3, XLM-R, ALBERT, T5
/// classifiers). Microsoft.ML.Tokenizers 2.0 runs Unigram only from the SentencePiece model file the checkpoint ships
/// beside tokenizer.json (spm.model, sentencepiece.bpe.model, spiece.model or tokenizer.model), so that file segments the
/// text and tokenizer.json gives everything else: each piece's id (by the piece's text, which also absorbs fairseq's id
/// offset in XLM-R), the framing and the padding id. Immutable and thread-safe; load through <see cref="TextTokenizer.Load"/>.
/// </summary>
internal sealed class UnigramTextTokenizer : TextTokenizer
{
    /// <summary>SentencePiece model files a Hugging Face checkpoint ships, in the order they are looked for.</summary>
    public static IReadOnlyList<string> ModelFileNames { get; } = ["spm.model", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model"];

    /// <summary>The largest SentencePiece model file read (real ones are a few MB).</summary>
    private const long MaxModelBytes = 64L << 20;

    private readonly SentencePieceTokenizer _pieces;
    private readonly Dictionary<string, int> _ids;
    private readonly int _unknownId;

    private UnigramTextTokenizer(string path, SentencePieceTokenizer pieces, Dictionary<string, int> ids, int unknownId, int vocabularySize, int paddingId, TokenTemplate template)
        : base(path, vocabularySize, paddingId, template)
    {
        _pieces = pieces;
        _ids = ids;
        _unknownId = unknownId;
    }

    /// <summary>The SentencePiece model file that segments text (full path).</summary>
    public string ModelFile { get; private init; } = "";

    protected override IReadOnlyList<int> Words(string text, int maxTokens)
    {
        var tokens = _pieces.EncodeToTokens(text, out _, addBeginningOfSentence: false, addEndOfSentence: false);
        var ids = new List<int>(Math.Min(tokens.Count, maxTokens));
        foreach (var token in tokens)
        {
            if (ids.Count == maxTokens) break;
            ids.Add(_ids.TryGetValue(token.Value, out int id) ? id : _unknownId);
        }
        return ids;
    }

    /// <summary>A tokenizer.json whose model is Unigram, with its SentencePiece model file beside it.</summary>
    /// <exception cref="TiltException">No vocabulary, no SentencePiece model file beside it (naming the names looked for), or a model file the library cannot read.</exception>
    internal static UnigramTextTokenizer FromTokenizerJson(string path, JsonElement root)
    {
        var model = root.GetProperty("model");
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Array || vocab.GetArrayLength() == 0)
            throw new TiltException($"{path}: Unigram model without a model.vocab list of [piece, score]");
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        int index = 0;
        foreach (var entry in vocab.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Array || entry.GetArrayLength() != 2 || entry[0].ValueKind != JsonValueKind.String)
                throw new TiltException($"{path}: model.vocab[{index}] is {entry}, not [piece, score]");
            ids.TryAdd(entry[0].GetString()!, index++);
        }
        var added = TokenizerJson.AddedTokens(path, root);
        foreach (var (content, id) in added) ids.TryAdd(content, id);
        int size = Math.Max(index, added.Count == 0 ? 0 : added.Values.Max() + 1);
        int unknown = model.TryGetProperty("unk_id", out var unk) && unk.TryGetInt32(out int u) && u >= 0 && u < size ? u : ids.GetValueOrDefault("<unk>", ids.GetValueOrDefault("[UNK]", 0));

        string folder = System.IO.Path.GetDirectoryName(path)!;
        string modelFile = ModelFileNames.Select(n => System.IO.Path.Combine(folder, n)).FirstOrDefault(File.Exists)
            ?? throw new TiltException(
                $"{path}: a Unigram tokenizer.json needs the SentencePiece model file beside it ({string.Join(", ", ModelFileNames)}), " +
                "which Microsoft.ML.Tokenizers reads the segmentation from; none is in " + folder);
        SentencePieceTokenizer pieces;
        try
        {
            using var stream = InputFile.OpenRead(modelFile, "SentencePiece model file", MaxModelBytes);
            pieces = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not (TiltException or OutOfMemoryException))
        {
            // The library parses the protobuf itself and reports a malformed file with its parser's own exception types.
            throw new TiltException($"{modelFile}: not a SentencePiece model Microsoft.ML.Tokenizers can read: {e.Message}", e);
        }
        int? Lookup(string token) => ids.TryGetValue(token, out int id) ? id : null;
        return new UnigramTextTokenizer(path, pieces, ids, unknown, size, TokenizerJson.PaddingId(root, Lookup), TokenizerJson.Template(path, root))
        {
            ModelFile = modelFile,
        };
    }
}
