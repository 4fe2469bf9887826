using System.Text.Json;
using Tilt.Engine.Rewards.Neural;
using static Tilt.Engine.Tests.Rewards.RewardTestData;
using ProtoMessage = Tilt.Engine.Tests.Rewards.Neural.OnnxGraphWriter.ProtoMessage;

namespace Tilt.Engine.Tests.Rewards.Neural;

/// <summary>
/// A Unigram tokenizer.json (DeBERTa-v3's kind) with a SentencePiece model file beside it, both written by the test:
/// the segmentation is the highest-scoring one (worked out by hand), ids come from tokenizer.json by piece (its order
/// differs from the SentencePiece file's on purpose), framing and padding from its post_processor and added tokens.
/// </summary>
public sealed class UnigramTokenizerTests : IDisposable
{
    private readonly TempDirectory _files = new();

    public void Dispose() => _files.Dispose();

    // SentencePiece ids: <unk> <s> </s>, then pieces with log-probability scores.
    private static readonly (string Piece, float Score, int Type)[] Pieces =
    [
        ("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3), ("▁hello", -1, 1), ("▁world", -1, 1), ("▁", -3, 1),
        ("h", -5, 1), ("e", -5, 1), ("l", -5, 1), ("o", -5, 1), ("w", -5, 1), ("r", -5, 1), ("d", -5, 1), ("▁he", -2, 1), ("llo", -2, 1),
    ];

    // tokenizer.json's ids: specials first, then the pieces in another order.
    private static readonly string[] JsonOrder =
        ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "▁world", "▁hello", "▁", "h", "e", "l", "o", "w", "r", "d", "llo", "▁he"];

    private static byte[] SentencePieceModel()
    {
        var model = new ProtoMessage();
        foreach (var (piece, score, type) in Pieces)
            model.Message(1, new ProtoMessage().String(1, piece).Float(2, score).Varint(3, (ulong)type));
        model.Message(2, new ProtoMessage().Varint(3, 1).Varint(4, (ulong)Pieces.Length).Varint(40, 0).Varint(41, 1).Varint(42, 2)); // UNIGRAM
        model.Message(3, new ProtoMessage().String(1, "identity").Varint(3, 1).Varint(4, 1).Varint(5, 1)); // dummy prefix, whitespace
        return model.ToArray();
    }

    private string Folder(bool withModelFile)
    {
        string folder = Directory.CreateDirectory(Path.Combine(_files.Path, Guid.NewGuid().ToString("N"))).FullName;
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), JsonSerializer.Serialize(new
        {
            added_tokens = new object[]
            {
                new { id = 0, content = "[PAD]", special = true }, new { id = 1, content = "[CLS]", special = true },
                new { id = 2, content = "[SEP]", special = true }, new { id = 3, content = "[UNK]", special = true },
            },
            post_processor = new { type = "BertProcessing", sep = new object[] { "[SEP]", 2 }, cls = new object[] { "[CLS]", 1 } },
            model = new { type = "Unigram", unk_id = 3, vocab = JsonOrder.Select(p => new object[] { p, -1.0 }).ToArray() },
        }));
        if (withModelFile) File.WriteAllBytes(Path.Combine(folder, "spm.model"), SentencePieceModel());
        return folder;
    }

    private static int Id(string piece) => Array.IndexOf(JsonOrder, piece);

    [Fact]
    public void Text_is_segmented_by_the_model_file_and_numbered_by_tokenizer_json()
    {
        var tokenizer = Assert.IsType<UnigramTextTokenizer>(TextTokenizer.Load(Path.Combine(Folder(withModelFile: true), "tokenizer.json")));
        // ▁hello ▁world scores -2; ▁he llo ▁world -5; so the first.
        Assert.Equal([1, Id("▁hello"), Id("▁world"), 2], tokenizer.Encode("hello world", 512));
        // "help": ▁he l, and p, which no piece covers, is unknown ([UNK] = 3 in tokenizer.json).
        Assert.Equal([1, Id("▁he"), Id("l"), 3, 2], tokenizer.Encode("help", 512));
        var (ids, segments) = tokenizer.EncodePair("hello", "world", 512);
        Assert.Equal([1, Id("▁hello"), 2, Id("▁world"), 2], ids);
        Assert.Equal([0, 0, 0, 1, 1], segments);
        Assert.Equal(0, tokenizer.PaddingId);
        Assert.Equal(JsonOrder.Length, tokenizer.VocabularySize);
    }

    [Fact]
    public void A_classifier_beside_a_unigram_tokenizer_reads_its_ids_and_segments()
    {
        string folder = Folder(withModelFile: true);
        string graph = Path.Combine(folder, "model.onnx");
        File.WriteAllBytes(graph, OnnxGraphWriter.CountingClassifier(withTokenTypes: true));
        var candidate = new Tilt.Engine.Rewards.RewardInput { Prompt = "hello", Text = "world", Tokens = [], IsFinished = true };
        // [CLS] ▁hello [SEP] ▁world [SEP]: ids summed by logit 0, segment ids (0 0 0 1 1) by logit 2.
        Assert.Equal(1 + Id("▁hello") + 2 + Id("▁world") + 2, Score(Tilt.Engine.Rewards.Specs.RewardSpec.Parse($"onnx:{graph}"), candidate)[0]);
        Assert.Equal(2, Score(Tilt.Engine.Rewards.Specs.RewardSpec.Parse($"onnx:{graph},label=2"), candidate)[0]);
    }

    [Fact]
    public void Without_the_model_file_the_error_names_the_files_looked_for()
    {
        string json = Path.Combine(Folder(withModelFile: false), "tokenizer.json");
        AssertTilt(() => TextTokenizer.Load(json), json, "spm.model", "sentencepiece.bpe.model");
    }
}
