using System.Text.Json;
using Tilt.Engine.Rewards;
using Tilt.Engine.Rewards.Neural;
using static Tilt.Engine.Tests.Rewards.RewardTestData;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Engine.Tests.Rewards.Neural;

/// <summary>
/// The onnx: classifier path on a graph written by the tests (no real sequence-classification ONNX model is
/// available offline): its "logits" are (sum of ids, length, sum of segment ids) over the attention mask, so every
/// reward is known exactly from the token ids and shows what the engine fed the graph. The tokenizer is MiniLM's real
/// BERT uncased vocabulary.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class OnnxClassifierRewardTests : IDisposable
{
    private readonly MiniLm _miniLm;
    private readonly TempDirectory _files = new();
    private readonly string _graph;
    private readonly string _graphWithoutTypes;

    public OnnxClassifierRewardTests(MiniLm miniLm)
    {
        _miniLm = miniLm;
        _graph = Path.Combine(_files.Path, "counting.onnx");
        File.WriteAllBytes(_graph, OnnxGraphWriter.CountingClassifier(withTokenTypes: true));
        Directory.CreateDirectory(Path.Combine(_files.Path, "no-types"));
        _graphWithoutTypes = Path.Combine(_files.Path, "no-types", "counting.onnx");
        File.WriteAllBytes(_graphWithoutTypes, OnnxGraphWriter.CountingClassifier(withTokenTypes: false));
    }

    public void Dispose() => _files.Dispose();

    private OnnxClassifierReward Reward(int label, ClassifierInput input = ClassifierInput.PromptAndResponse, int maxLength = 512, string? graph = null) =>
        OnnxClassifierReward.Create(graph ?? _graph, new NeuralRewardOptions { Label = label, Input = input, MaxLength = maxLength, TokenizerPath = _miniLm.VocabPath });

    private static RewardInput Pair(string prompt, string text) => new() { Prompt = prompt, Text = text, Tokens = [], IsFinished = true };

    [Fact]
    public void The_default_input_is_the_prompt_and_response_pair_with_segment_ids()
    {
        // [CLS] hello [SEP] world ! [SEP] = 101 7592 102 2088 999 102; segments 0 0 0 1 1 1.
        var candidate = Pair("Hello", "World!");
        Assert.Equal(101 + 7592 + 102 + 2088 + 999 + 102, Score(Reward(0), candidate)[0]);
        Assert.Equal(6, Score(Reward(1), candidate)[0]);
        Assert.Equal(3, Score(Reward(2), candidate)[0]);
    }

    [Fact]
    public void Input_response_reads_the_response_alone()
    {
        // [CLS] hello , world ! [SEP]
        var candidate = Pair("A prompt that must not count", "Hello, World!");
        Assert.Equal(101 + 7592 + 1010 + 2088 + 999 + 102, Score(Reward(0, ClassifierInput.Response), candidate)[0]);
        Assert.Equal(6, Score(Reward(1, ClassifierInput.Response), candidate)[0]);
        Assert.Equal(0, Score(Reward(2, ClassifierInput.Response), candidate)[0]);
    }

    [Fact]
    public void A_batch_of_different_lengths_is_one_run_with_padding_masked()
    {
        var reward = Reward(0);
        var lengths = Reward(1);
        RewardInput[] batch =
        [
            Pair("", ""),
            Pair("Once upon a time", "there was a little girl named Lily who loved to play outside in the sun with her friends."),
            Pair("Hi", "Hello"),
            Pair(string.Join(' ', Enumerable.Repeat("happy", 200)), "end"),
        ];
        long runs = reward.RunCount;
        double[] batched = Score(reward, batch);
        Assert.Equal(runs + 1, reward.RunCount);
        Assert.Equal(batch.Select(c => Score(reward, c)[0]), batched);
        var tokenizer = WordPieceTextTokenizer.Load(_miniLm.VocabPath);
        int story = tokenizer.Encode(batch[1].Text, 512).Length - 2;
        Assert.Equal([3, 4 + story + 3, 5, 200 + 1 + 3], Score(lengths, batch));
    }

    [Fact]
    public void A_too_long_pair_keeps_the_response_and_the_end_of_the_prompt()
    {
        var tokenizer = WordPieceTextTokenizer.Load(_miniLm.VocabPath);
        int three = tokenizer.Encode("three", 512)[1];
        int hello = tokenizer.Encode("hello", 512)[1];
        // max-length 5: [CLS] three [SEP] hello [SEP]
        var candidate = Pair("one two three", "Hello");
        Assert.Equal(5, Score(Reward(1, maxLength: 5), candidate)[0]);
        Assert.Equal(101 + three + 102 + hello + 102, Score(Reward(0, maxLength: 5), candidate)[0]);
        // A response longer than the budget keeps its beginning and drops the prompt: [CLS] [SEP] one two [SEP].
        var longResponse = Pair("prompt", "one two three four");
        Assert.Equal(5, Score(Reward(1, maxLength: 5), longResponse)[0]);
        Assert.Equal(3, Score(Reward(2, maxLength: 5), longResponse)[0]); // segment 1: one two [SEP]
    }

    [Fact]
    public void A_graph_without_token_type_ids_gets_ids_and_mask_only()
    {
        var reward = Reward(0, graph: _graphWithoutTypes);
        Assert.Equal(101 + 7592 + 102 + 2088 + 999 + 102, Score(reward, Pair("Hello", "World!"))[0]);
    }

    [Fact]
    public void Specs_parse_with_options_and_read_back()
    {
        string spec = $"onnx:{_graph},label=2,input=response,max-length=64,tokenizer={_miniLm.VocabPath}";
        var reward = Assert.IsType<OnnxClassifierReward>(RewardSpec.Parse(spec));
        Assert.Equal(spec, reward.Description);
        Assert.Equal(2, reward.Options.Label);
        Assert.Equal(ClassifierInput.Response, reward.Options.Input);
        Assert.Equal(spec, RewardSpec.Parse(reward.Description).Description);
        var sum = RewardSpec.Parse($"0.5*onnx:{_graph},label=1,tokenizer={_miniLm.VocabPath}+length:10");
        Assert.Equal(0.5 * 6 + -(Math.Abs(2 - 10) / 10.0), Score(sum, new RewardInput { Prompt = "Hello", Text = "World!", Tokens = [1, 2], IsFinished = false })[0], 12);
        AssertTilt(() => RewardSpec.Parse($"onnx:{_graph},label=3,tokenizer={_miniLm.VocabPath}"), "label=3", "has 3 logits");
        AssertTilt(() => RewardSpec.Parse($"onnx:{_graph},input=prompt,tokenizer={_miniLm.VocabPath}"), "bad input 'prompt'");
        AssertTilt(() => RewardSpec.Parse($"onnx:{_graph},label=-1"), "bad label '-1'");
        AssertTilt(() => RewardSpec.Parse($"onnx:{_graph},label=1,label=2"), "'label' is given twice");
        AssertTilt(() => RewardSpec.Parse($"onnx:{_graph},label"), "needs a value");
    }

    [Fact]
    public void The_tokenizer_is_found_beside_the_model_tokenizer_json_first()
    {
        string folder = Path.GetDirectoryName(_graph)!;
        // Only BERT's special tokens and two words: tokenizer.json (WordPiece) wins over a vocab.txt beside it.
        string[] tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"];
        File.WriteAllLines(Path.Combine(folder, "vocab.txt"), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "world", "hello"]);
        var json = new
        {
            model = new { type = "WordPiece", unk_token = "[UNK]", continuing_subword_prefix = "##", vocab = tokens.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i) },
            normalizer = new { type = "BertNormalizer", lowercase = true },
        };
        string tokenizerJson = Path.Combine(folder, "tokenizer.json");
        File.WriteAllText(tokenizerJson, JsonSerializer.Serialize(json));
        var reward = OnnxClassifierReward.Create(_graph, new NeuralRewardOptions { Label = 0, Input = ClassifierInput.Response });
        Assert.Equal(tokenizerJson, reward.TokenizerPath);
        // [CLS]=2 hello=5 world=6 [UNK]=1 (for "!") [SEP]=3
        Assert.Equal(2 + 5 + 6 + 1 + 3, Score(reward, Pair("", "Hello World!"))[0]);

        File.Delete(tokenizerJson);
        var fromVocab = OnnxClassifierReward.Create(_graph, new NeuralRewardOptions { Label = 0, Input = ClassifierInput.Response });
        Assert.Equal(Path.Combine(folder, "vocab.txt"), fromVocab.TokenizerPath);
        Assert.Equal(2 + 6 + 5 + 3, Score(fromVocab, Pair("", "Hello World"))[0]);

        string wordLevel = _files.Write("wordlevel.json", """{"model":{"type":"WordLevel","vocab":{"a":0}}}""");
        AssertTilt(() => OnnxClassifierReward.Create(_graph, new NeuralRewardOptions { TokenizerPath = wordLevel }), wordLevel, "model type 'WordLevel' is not supported");
        string missing = Path.Combine(_files.Path, "nothing-here.txt");
        AssertTilt(() => OnnxClassifierReward.Create(_graph, new NeuralRewardOptions { TokenizerPath = missing }), missing, "tokenizer file not found");
    }
}
