using System.Text.Json;
using Tilt.Engine.Rewards;
using Tilt.Engine.Rewards.Neural;
using Tilt.Engine.Rewards.Specs;
using static Tilt.Engine.Tests.Rewards.RewardTestData;

namespace Tilt.Engine.Tests.Rewards.Neural;

/// <summary>
/// tokenizer.json beyond BERT: a byte-level BPE (RoBERTa's kind) written by the test with merges whose result is
/// worked out by hand, RoBERTa's and TemplateProcessing's framing, through the counting ONNX graph (logits = sum of
/// ids, length, sum of segment ids); MiniLM's WordPiece vocabulary as tokenizer.json gives vocab.txt's ids; and the
/// ONNX Runtime session options of the spec.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class TokenizerJsonTests(MiniLm miniLm) : IDisposable
{
    private readonly TempDirectory _files = new();

    public void Dispose() => _files.Dispose();

    // <s>=0 <pad>=1 </s>=2 <unk>=3, then byte-level pieces ('Ġ' is the space byte) and the merges' results.
    private static readonly string[] Vocabulary =
        ["<s>", "<pad>", "</s>", "<unk>", "h", "e", "l", "o", "Ġ", "w", "r", "d", "he", "ll", "hell", "hello", "Ġw", "or", "Ġwor"];

    private static readonly string[] MergeRules = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or"];

    private string ByteLevelBpe(object? postProcessor, bool pairMerges = false, object? padding = null) => _files.Write($"bpe-{Guid.NewGuid():N}.json", JsonSerializer.Serialize(new
    {
        added_tokens = new object[]
        {
            new { id = 0, content = "<s>", special = true }, new { id = 1, content = "<pad>", special = true },
            new { id = 2, content = "</s>", special = true }, new { id = 3, content = "<unk>", special = true },
        },
        normalizer = (object?)null,
        pre_tokenizer = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
        post_processor = postProcessor,
        padding,
        model = new
        {
            type = "BPE",
            unk_token = "<unk>",
            vocab = Vocabulary.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i),
            merges = pairMerges ? MergeRules.Select(m => m.Split(' ')).ToArray() : (object)MergeRules,
        },
    }));

    private static readonly object Roberta = new { type = "RobertaProcessing", sep = new object[] { "</s>", 2 }, cls = new object[] { "<s>", 0 }, trim_offsets = true, add_prefix_space = false };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Byte_level_bpe_gives_the_merges_ids_framed_as_roberta(bool pairMerges)
    {
        var tokenizer = TextTokenizer.Load(ByteLevelBpe(Roberta, pairMerges));
        Assert.IsType<BpeTextTokenizer>(tokenizer);
        // "hello" merges to hello (15); " world" is Ġ w o r l d -> Ġw or l d -> Ġwor (18) l (6) d (11).
        Assert.Equal([0, 15, 18, 6, 11, 2], tokenizer.Encode("hello world", 512));
        // A pair: <s> A </s></s> B </s>, segment 0 throughout (RoBERTa has one segment embedding).
        var (ids, segments) = tokenizer.EncodePair("hello", "world", 512);
        Assert.Equal([0, 15, 2, 2, 9, 17, 6, 11, 2], ids);
        Assert.All(segments, s => Assert.Equal(0, s));
        Assert.Equal(1, tokenizer.PaddingId); // from added_tokens' <pad>: RoBERTa graphs number positions by it
        Assert.Equal(Vocabulary.Length, tokenizer.VocabularySize);
        // Truncation keeps the response and the prompt's end: 5 specials-free slots hold " world" (3) and "hello" (1).
        Assert.Equal([0, 15, 2, 2, 18, 6, 11, 2], tokenizer.EncodePair("hello hello", " world", 8).Ids);
    }

    [Fact]
    public void A_classifier_with_a_bpe_tokenizer_scores_what_the_ids_say()
    {
        string folder = Directory.CreateDirectory(Path.Combine(_files.Path, "roberta")).FullName;
        string graph = Path.Combine(folder, "model.onnx");
        File.WriteAllBytes(graph, OnnxGraphWriter.CountingClassifier(withTokenTypes: false));
        File.Copy(ByteLevelBpe(Roberta), Path.Combine(folder, "tokenizer.json"));
        var reward = Assert.IsType<OnnxClassifierReward>(RewardSpec.Parse($"onnx:{graph}"));
        Assert.Equal(Path.Combine(folder, "tokenizer.json"), reward.TokenizerPath);
        var candidate = new RewardInput { Prompt = "hello", Text = "world", Tokens = [], IsFinished = true };
        Assert.Equal(0 + 15 + 2 + 2 + 9 + 17 + 6 + 11 + 2, Score(reward, candidate)[0]);
        var lengths = RewardSpec.Parse($"onnx:{graph},label=1");
        // A batch of two lengths (an empty pair is <s> </s></s> </s>): padding (id 1) is masked, so each row counts its own tokens.
        Assert.Equal([9, 4], Score(lengths, candidate, new RewardInput { Prompt = "", Text = "", Tokens = [], IsFinished = true }));
    }

    [Fact]
    public void Template_processing_sets_special_tokens_and_segment_ids()
    {
        var template = new
        {
            type = "TemplateProcessing",
            single = new object[] { new { SpecialToken = new { id = "<s>", type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } }, new { SpecialToken = new { id = "</s>", type_id = 0 } } },
            pair = new object[]
            {
                new { SpecialToken = new { id = "<s>", type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } }, new { SpecialToken = new { id = "</s>", type_id = 0 } },
                new { Sequence = new { id = "B", type_id = 1 } }, new { SpecialToken = new { id = "</s>", type_id = 1 } },
            },
            special_tokens = new Dictionary<string, object>
            {
                ["<s>"] = new { id = "<s>", ids = new[] { 0 }, tokens = new[] { "<s>" } },
                ["</s>"] = new { id = "</s>", ids = new[] { 2 }, tokens = new[] { "</s>" } },
            },
        };
        var tokenizer = TextTokenizer.Load(ByteLevelBpe(new { type = "Sequence", processors = new object[] { new { type = "ByteLevel" }, template } }, padding: new { pad_id = 3 }));
        var (ids, segments) = tokenizer.EncodePair("hello", "world", 512);
        Assert.Equal([0, 15, 2, 9, 17, 6, 11, 2], ids);
        Assert.Equal([0, 0, 0, 1, 1, 1, 1, 1], segments);
        Assert.Equal(3, tokenizer.PaddingId); // padding.pad_id wins over <pad>

        var bad = ByteLevelBpe(new { type = "TemplateProcessing", single = new object[] { new { SpecialToken = new { id = "[CLS]", type_id = 0 } } }, pair = Array.Empty<object>(), special_tokens = new { } });
        AssertTilt(() => TextTokenizer.Load(bad), bad, "special token '[CLS]'");
    }

    [Fact]
    public void Unsupported_parts_of_a_bpe_tokenizer_json_are_named()
    {
        string metaspace = _files.Write("metaspace.json", """{"pre_tokenizer":{"type":"Metaspace"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}""");
        AssertTilt(() => TextTokenizer.Load(metaspace), metaspace, "pre_tokenizer 'Metaspace' is not supported");
        string nfkc = _files.Write("nfkc.json", """{"normalizer":{"type":"NFKC"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}""");
        AssertTilt(() => TextTokenizer.Load(nfkc), nfkc, "normalizer 'NFKC' is not supported");
        string noMerges = _files.Write("nomerges.json", """{"model":{"type":"BPE","vocab":{"a":0}}}""");
        AssertTilt(() => TextTokenizer.Load(noMerges), noMerges, "model.merges");
    }

    [Fact]
    public void MiniLms_vocabulary_as_tokenizer_json_gives_the_vocab_txt_ids()
    {
        string[] tokens = File.ReadAllLines(miniLm.VocabPath);
        string json = _files.Write("minilm-tokenizer.json", JsonSerializer.Serialize(new
        {
            normalizer = new { type = "BertNormalizer", clean_text = true, handle_chinese_chars = true, strip_accents = (bool?)null, lowercase = true },
            post_processor = new { type = "BertProcessing", sep = new object[] { "[SEP]", 102 }, cls = new object[] { "[CLS]", 101 } },
            model = new { type = "WordPiece", unk_token = "[UNK]", continuing_subword_prefix = "##", vocab = tokens.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i) },
        }));
        var fromJson = TextTokenizer.Load(json);
        var fromVocab = TextTokenizer.Load(miniLm.VocabPath);
        string[] texts = ["Hello, World!", "Once upon a time there was a little girl named Lily.", "Crème brûlée in 東京 costs $12.50", "unaffable tokenization"];
        foreach (string text in texts)
        {
            Assert.Equal(fromVocab.Encode(text, 512), fromJson.Encode(text, 512));
            var (ids, segments) = fromJson.EncodePair("a question?", text, 512);
            Assert.Equal(fromVocab.EncodePair("a question?", text, 512).Ids, ids);
            Assert.Equal(fromVocab.EncodePair("a question?", text, 512).Segments, segments);
        }
        Assert.Equal([101, 7592, 1010, 2088, 999, 102], fromJson.Encode("Hello, World!", 512));
    }

    [Fact]
    public void Session_options_are_spec_options_and_make_their_own_session()
    {
        string graph = Path.Combine(_files.Path, "counting.onnx");
        File.WriteAllBytes(graph, OnnxGraphWriter.CountingClassifier(withTokenTypes: true));
        string spec = $"onnx:{graph},tokenizer={miniLm.VocabPath},threads=2,optimization=basic";
        var reward = Assert.IsType<OnnxClassifierReward>(RewardSpec.Parse(spec));
        Assert.Equal(spec, reward.Description);
        Assert.Equal(2, reward.Options.IntraOpThreads);
        Assert.Equal(OnnxGraphOptimization.Basic, reward.Options.GraphOptimization);
        var plain = Assert.IsType<OnnxClassifierReward>(RewardSpec.Parse($"onnx:{graph},tokenizer={miniLm.VocabPath}"));
        Assert.NotSame(OnnxTextModel.Load(graph, reward.Options.Session), OnnxTextModel.Load(graph, plain.Options.Session));
        Assert.Same(OnnxTextModel.Load(graph, reward.Options.Session), OnnxTextModel.Load(graph, new OnnxSessionSettings(OnnxDevice.Cpu, 2, OnnxGraphOptimization.Basic)));
        var candidate = new RewardInput { Prompt = "Hello", Text = "World!", Tokens = [], IsFinished = true };
        Assert.Equal(Score(plain, candidate), Score(reward, candidate)); // the graph's math does not depend on them

        var similarity = RewardSpec.Parse($"similarity:{miniLm.ModelPath},threads=1,optimization=none|a happy story");
        Assert.Equal(similarity.Description, RewardSpec.Parse(similarity.Description).Description);
        AssertTilt(() => RewardSpec.Parse($"onnx:{graph},threads=0"), "bad threads '0'");
        AssertTilt(() => RewardSpec.Parse($"onnx:{graph},optimization=max"), "bad optimization 'max'", "all, extended, basic or none");
    }
}
