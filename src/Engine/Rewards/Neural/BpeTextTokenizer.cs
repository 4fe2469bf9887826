using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// BPE tokenization from a Hugging Face tokenizer.json (Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>): the
/// byte-level BPE of RoBERTa and GPT-2 (pre_tokenizer ByteLevel) or a plain BPE split on white space, framed by the
/// file's post_processor (RoBERTa: <c>&lt;s&gt; A &lt;/s&gt;&lt;/s&gt; B &lt;/s&gt;</c>, segment ids 0) and padded with its
/// padding id. Immutable and thread-safe; load through <see cref="TextTokenizer.Load"/>.
/// </summary>
internal sealed partial class BpeTextTokenizer : TextTokenizer
{
    private readonly BpeTokenizer _bpe;
    private readonly bool _addPrefixSpace;

    private BpeTextTokenizer(string path, BpeTokenizer bpe, bool addPrefixSpace, int vocabularySize, int paddingId, TokenTemplate template)
        : base(path, vocabularySize, paddingId, template)
    {
        _bpe = bpe;
        _addPrefixSpace = addPrefixSpace;
    }

    // GPT-2's split, which Hugging Face's ByteLevel pre-tokenizer applies (use_regex, the default): contractions,
    // letters, digits and other symbols, each with the space before it, and runs of white space.
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant)]
    private static partial Regex ByteLevelSplit();

    protected override IReadOnlyList<int> Words(string text, int maxTokens) =>
        _bpe.EncodeToIds(_addPrefixSpace && !text.StartsWith(' ') ? " " + text : text, maxTokens, out _, out _);

    /// <summary>A tokenizer.json whose model is BPE.</summary>
    /// <exception cref="TiltException">Missing vocab or merges, or a normalizer or pre-tokenizer this reader does not support (named).</exception>
    internal static BpeTextTokenizer FromTokenizerJson(string path, JsonElement root)
    {
        var model = root.GetProperty("model");
        if (!model.TryGetProperty("vocab", out var vocabJson) || vocabJson.ValueKind != JsonValueKind.Object)
            throw new TiltException($"{path}: BPE model without a model.vocab object");
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabJson.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out int id) || id < 0)
                throw new TiltException($"{path}: model.vocab entry '{entry.Name}' has a bad id");
            vocabulary[entry.Name] = id;
        }
        var added = TokenizerJson.AddedTokens(path, root);
        int size = Math.Max(vocabulary.Count == 0 ? 0 : vocabulary.Values.Max() + 1, added.Count == 0 ? 0 : added.Values.Max() + 1);
        if (size == 0) throw new TiltException($"{path}: the BPE vocabulary is empty");

        var (preTokenizer, byteLevel, addPrefixSpace) = PreTokenizerOf(path, root);
        var options = new BpeOptions(vocabulary)
        {
            Merges = Merges(path, model),
            ByteLevel = byteLevel,
            PreTokenizer = preTokenizer,
            Normalizer = NormalizerOf(path, root),
            UnknownToken = TokenizerJson.Text(model, "unk_token"),
            ContinuingSubwordPrefix = TokenizerJson.Text(model, "continuing_subword_prefix"),
            EndOfWordSuffix = TokenizerJson.Text(model, "end_of_word_suffix"),
            FuseUnknownTokens = TokenizerJson.Flag(model, "fuse_unk") ?? false,
        };
        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(options);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new TiltException($"{path}: Microsoft.ML.Tokenizers cannot build this BPE tokenizer: {e.Message}", e);
        }
        int? Lookup(string token) => added.TryGetValue(token, out int a) ? a : vocabulary.TryGetValue(token, out int v) ? v : null;
        return new BpeTextTokenizer(path, bpe, addPrefixSpace, size, TokenizerJson.PaddingId(root, Lookup), TokenizerJson.Template(path, root));
    }

    /// <summary>model.merges: "a b" strings (older files) or ["a", "b"] pairs (tokenizers 0.20 and later).</summary>
    private static List<string> Merges(string path, JsonElement model)
    {
        if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array)
            throw new TiltException($"{path}: BPE model without a model.merges list");
        var list = new List<string>(merges.GetArrayLength());
        foreach (var merge in merges.EnumerateArray())
        {
            list.Add(merge.ValueKind switch
            {
                JsonValueKind.String => merge.GetString()!,
                JsonValueKind.Array when merge.GetArrayLength() == 2 => $"{merge[0].GetString()} {merge[1].GetString()}",
                _ => throw new TiltException($"{path}: model.merges holds {merge}, neither \"a b\" nor [\"a\", \"b\"]"),
            });
        }
        return list;
    }

    private static (PreTokenizer? PreTokenizer, bool ByteLevel, bool AddPrefixSpace) PreTokenizerOf(string path, JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object) return (null, false, false);
        return TokenizerJson.Text(pre, "type") switch
        {
            "ByteLevel" => (TokenizerJson.Flag(pre, "use_regex") ?? true ? new RegexPreTokenizer(ByteLevelSplit(), null) : null,
                            true, TokenizerJson.Flag(pre, "add_prefix_space") ?? false),
            "Whitespace" => (PreTokenizer.CreateWordOrNonWord(), false, false),
            "WhitespaceSplit" => (PreTokenizer.CreateWhiteSpace(), false, false),
            var other => throw new TiltException(
                $"{path}: pre_tokenizer '{other}' is not supported for BPE (ByteLevel, as in RoBERTa and GPT-2, Whitespace or WhitespaceSplit)"),
        };
    }

    private static Normalizer? NormalizerOf(string path, JsonElement root)
    {
        if (!root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind != JsonValueKind.Object) return null;
        return TokenizerJson.Text(normalizer, "type") switch
        {
            "Lowercase" => new LowerCaseNormalizer(),
            var other => throw new TiltException($"{path}: normalizer '{other}' is not supported for BPE (none, or Lowercase)"),
        };
    }
}
