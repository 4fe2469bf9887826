using Tilt.Engine.Rewards;
using Tilt.Engine.Rewards.Neural;
using Tilt.Engine.Values;
using static Tilt.Engine.Tests.Rewards.RewardTestData;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Engine.Tests.Rewards.Neural;

[Collection(MiniLmCollection.Name)]
public sealed class SimilarityRewardTests(MiniLm miniLm) : IDisposable
{
    private const string Target = "a happy story about friends playing together";
    private const string HappyFriends = "Lily and her friend Max played with a ball in the sun. They were happy.";
    private const string SadDog = "The little dog was sad because he lost his bone.";
    private const string StockMarket = "Stock markets dropped as inflation data came in above expectations.";

    private readonly TempDirectory _files = new();

    public void Dispose() => _files.Dispose();

    private SimilarityReward Reward(string target = Target, NeuralRewardOptions? options = null) =>
        SimilarityReward.Create(miniLm.ModelPath, target, options);

    [Fact]
    public void The_model_files_are_the_ones_the_readme_names()
    {
        Assert.Equal(MiniLm.ModelSha256, miniLm.ModelHash);
        Assert.Equal(MiniLm.VocabSha256, miniLm.VocabHash);
    }

    [Fact]
    public void Tokenization_is_bert_uncased_wordpiece_with_cls_and_sep()
    {
        var tokenizer = WordPieceTextTokenizer.Load(miniLm.VocabPath);
        Assert.Equal(30522, tokenizer.VocabularySize);
        // bert-base-uncased: [CLS] hello , world ! [SEP]; "embeddings" splits into em ##bed ##ding ##s.
        Assert.Equal([101, 7592, 1010, 2088, 999, 102], tokenizer.Encode("Hello, World!", 512));
        Assert.Equal([101, 7861, 8270, 4667, 2015, 102], tokenizer.Encode("embeddings", 512));
        Assert.Equal([101, 102], tokenizer.Encode("", 512));
    }

    [Fact]
    public void Cosines_agree_with_the_models_readme()
    {
        var reward = Reward();
        Assert.Equal(384, reward.Dimension);
        double[] r = Score(reward, HappyFriends, SadDog, StockMarket, Target);
        // The README gives 0.47 (happy two-friends story), 0.20 (sad dog) and -0.09 (stock market), rounded to 2
        // decimals, but not the texts: ours fit those descriptions (measured 0.473, 0.190, -0.107), and 0.02 allows for
        // the unknown wording. Stock-market sentences we tried ranged from -0.11 to +0.08, so this pins the scale, not
        // the last digit. The target against itself must give 1 up to float32 rounding of the states (1e-6).
        string all = string.Join(", ", r);
        Assert.True(Math.Abs(r[0] - 0.47) <= 0.02, all);
        Assert.True(Math.Abs(r[1] - 0.20) <= 0.02, all);
        Assert.True(Math.Abs(r[2] + 0.09) <= 0.02, all);
        Assert.True(r[0] > r[1] && r[1] > r[2], all);
        Assert.Equal(1.0, r[3], 1e-6);
    }

    [Fact]
    public void Embeddings_are_the_masked_mean_of_the_token_states_normalised()
    {
        var reward = Reward();
        double[] e = reward.Embed([HappyFriends, "hi"]);
        for (int row = 0; row < 2; row++)
        {
            double norm = 0;
            for (int h = 0; h < 384; h++) norm += e[row * 384 + h] * e[row * 384 + h];
            Assert.Equal(1.0, norm, 1e-12);
        }

        // Cosine is symmetric and a text scored as a candidate against a target equals the dot of the embeddings.
        double dot = 0;
        for (int h = 0; h < 384; h++) dot += e[h] * e[384 + h];
        Assert.Equal(dot, Score(Reward("hi"), HappyFriends)[0], 1e-6);
    }

    [Fact]
    public void A_batch_of_very_different_lengths_is_one_run_and_equals_one_at_a_time()
    {
        var reward = Reward();
        string[] texts =
        [
            "hi",
            "",
            HappyFriends,
            string.Join(' ', Enumerable.Repeat(SadDog, 12)), // ~300 tokens
            StockMarket,
            "Lily smiled.",
        ];
        long runs = reward.RunCount;
        double[] batched = Score(reward, texts);
        Assert.Equal(runs + 1, reward.RunCount);
        for (int i = 0; i < texts.Length; i++)
        {
            // Padding is masked out of attention and of the mean; what remains is float32 summation order (~1e-7).
            Assert.Equal(Score(reward, texts[i])[0], batched[i], 1e-5);
        }
    }

    [Fact]
    public void Texts_longer_than_max_length_are_truncated_to_their_beginning()
    {
        var reward = Reward();
        // "happy" is one WordPiece: 1000 of them truncate to 510 between [CLS] and [SEP] (512 positions).
        string longText = string.Join(' ', Enumerable.Repeat("happy", 1000));
        string cut = string.Join(' ', Enumerable.Repeat("happy", 510));
        double[] r = Score(reward, longText, cut, string.Join(' ', Enumerable.Repeat("happy", 500)));
        Assert.Equal(r[1], r[0], 1e-9);
        Assert.NotEqual(r[1], r[2], 1e-5);

        var short16 = Reward(options: new NeuralRewardOptions { MaxLength = 16 });
        Assert.Equal(Score(short16, "one two three four five six seven eight nine ten eleven twelve thirteen fourteen")[0],
            Score(short16, "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen")[0], 1e-9);
    }

    [Fact]
    public void Rewards_on_one_file_share_one_session()
    {
        var a = Reward("friends");
        var b = Reward("a sad dog");
        Assert.Same(a.Session, b.Session);
        Assert.Same(a.Session, OnnxTextModel.Load(Path.Combine(miniLm.Folder, ".", "model.onnx"), new OnnxSessionSettings(OnnxDevice.Cpu)));
        Assert.Same(a.Session, Reward(options: new NeuralRewardOptions { MaxLength = 64 }).Session); // options differ, file is the same
    }

    [Fact]
    public void Concurrent_scoring_gives_the_same_values()
    {
        var reward = Reward();
        string[] texts = [HappyFriends, SadDog, StockMarket, "hi", "Tom ran."];
        double[] expected = Score(reward, texts);
        var results = new double[8][];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => results[i] = Score(reward, texts));
        Assert.All(results, r => Assert.Equal(expected, r));
    }

    [Fact]
    public void As_a_prefix_value_a_batch_is_one_run()
    {
        var reward = Reward();
        var value = new PrefixRewardValue(reward);
        string[] prefixes = [.. Enumerable.Range(1, 16).Select(i => string.Join(' ', HappyFriends.Split(' ').Take(i)))];
        var inputs = prefixes.Select(p => new RewardInput { Prompt = "Once", PromptTokens = [1], Tokens = [5], Text = p, IsFinished = false }).ToArray();
        var values = new double[16];
        long runs = reward.RunCount;
        value.Evaluate(inputs, ReadOnlySpan<float>.Empty, 16, values);
        Assert.Equal(runs + 1, reward.RunCount);
        Assert.Equal(Score(reward, prefixes), values);
    }

    [Fact]
    public void Specs_parse_combine_and_read_back()
    {
        string model = miniLm.ModelPath;
        var single = Assert.IsType<SimilarityReward>(RewardSpec.Parse($"similarity:{model}|{Target}"));
        Assert.Equal(Target, single.Target);
        Assert.Equal($"similarity:{model}|{Target}", single.Description);

        // Weighted sum of two targets, and a mean whose second target has an escaped ';' and parentheses.
        var sum = Assert.IsType<WeightedReward>(RewardSpec.Parse($"0.5*similarity:{model}|happy friends + 0.5*similarity:{model}|a sunny park"));
        Assert.Equal(["happy friends", "a sunny park"], sum.Terms.Select(t => ((SimilarityReward)t.Reward).Target));
        var mean = Assert.IsType<RewardEnsemble>(RewardSpec.Parse($@"mean(similarity:{model},max-length=64|happy\; friends \(two\);length:40)"));
        var escaped = Assert.IsType<SimilarityReward>(mean.Members[0]);
        Assert.Equal("happy; friends (two)", escaped.Target);
        Assert.Equal(64, escaped.Options.MaxLength);
        Assert.Equal($@"mean(similarity:{model},max-length=64|happy\; friends \(two\);length:40)", mean.Description);
        var again = RewardSpec.Parse(mean.Description);
        Assert.Equal(mean.Description, again.Description);
        Assert.Equal(Score(mean, HappyFriends, StockMarket), Score(again, HappyFriends, StockMarket));

        // '+' inside a target stays text unless a known kind follows it.
        Assert.Equal("a+b friends", Assert.IsType<SimilarityReward>(RewardSpec.Parse($"similarity:{model}|a+b friends")).Target);
        // Relative paths resolve against the base directory; tokenizer= names the vocabulary explicitly.
        var relative = Assert.IsType<SimilarityReward>(RewardSpec.Parse($"similarity:model.onnx,tokenizer=vocab.txt|friends",
            new RewardSpecContext { BaseDirectory = miniLm.Folder }));
        Assert.Equal(model, relative.ModelPath);
        Assert.Equal($"similarity:{model},tokenizer={miniLm.VocabPath}|friends", relative.Description);
    }

    [Fact]
    public void Bad_specs_and_files_name_the_problem()
    {
        string model = miniLm.ModelPath;
        AssertTilt(() => RewardSpec.Parse($"similarity:{model}|   "), "empty target text");
        AssertTilt(() => RewardSpec.Parse($"similarity:{model}"), "has no target text");
        AssertTilt(() => RewardSpec.Parse("similarity:|friends"), "missing model path");
        AssertTilt(() => RewardSpec.Parse($"similarity:{model},colour=red|friends"), "unknown option 'colour'", "max-length, tokenizer, device");
        AssertTilt(() => RewardSpec.Parse($"similarity:{model},max-length=2|friends"), "bad max-length '2'");
        AssertTilt(() => RewardSpec.Parse($"similarity:{model},label=1|friends"), "unknown option 'label'");
        AssertTilt(() => RewardSpec.Parse($"similarity:{model},device=tpu|friends"), "bad device 'tpu'");
        Assert.Throws<ArgumentException>(() => SimilarityReward.Create(model, ""));

        string missing = Path.Combine(_files.Path, "absent.onnx");
        AssertTilt(() => RewardSpec.Parse($"similarity:{missing}|friends"), missing, "ONNX model file not found");

        string text = _files.Write("text.onnx", "this is not a protobuf graph");
        AssertTilt(() => SimilarityReward.Create(text, "friends"), text, "not an ONNX model");

        // The real graph with too large a vocabulary beside it: the probe run fails in the embedding lookup.
        Directory.CreateDirectory(Path.Combine(_files.Path, "big"));
        string bigVocab = Path.Combine(_files.Path, "big", "vocab.txt");
        File.WriteAllLines(bigVocab, File.ReadAllLines(miniLm.VocabPath).Concat(Enumerable.Range(0, 100).Select(i => $"[extra{i}]")));
        AssertTilt(() => SimilarityReward.Create(model, "friends", new NeuralRewardOptions { TokenizerPath = bigVocab }),
            bigVocab, "30622 tokens", "does not fit", model);

        // A vocabulary without BERT's special tokens.
        string plain = _files.Write("plain.txt", "a\nb\nc\n");
        AssertTilt(() => SimilarityReward.Create(model, "friends", new NeuralRewardOptions { TokenizerPath = plain }), plain, "not a BERT WordPiece vocabulary");

        // MiniLM has 512 positions.
        AssertTilt(() => SimilarityReward.Create(model, "friends", new NeuralRewardOptions { MaxLength = 600 }), "max-length 600", "does not fit");

        // The CPU package has no CUDA provider: asking for it is a clear error, not a silent CPU run.
        AssertTilt(() => SimilarityReward.Create(model, "friends", new NeuralRewardOptions { Device = OnnxDevice.Cuda }), "no CUDA execution provider");
    }

    [Fact]
    public void Graphs_with_other_names_are_refused_with_their_actual_names()
    {
        // Inputs named x (int64 [n, s]) -> y: not a text model.
        string identity = Path.Combine(_files.Path, "identity.onnx");
        File.WriteAllBytes(identity, OnnxGraphWriter.Model(
            [new("x", OnnxGraphWriter.Int64, "n", "s")],
            [new("Identity", ["x"], ["y"])],
            [new("y", OnnxGraphWriter.Int64, "n", "s")]));
        AssertTilt(() => SimilarityReward.Create(identity, "friends", new NeuralRewardOptions { TokenizerPath = miniLm.VocabPath }),
            identity, "unexpected graph input x int64 [n, s]", "input_ids and attention_mask");

        // Right inputs, but the only output is rank 2: no token states to pool.
        string pooled = Path.Combine(_files.Path, "pooled.onnx");
        File.WriteAllBytes(pooled, OnnxGraphWriter.Model(
            [new("input_ids", OnnxGraphWriter.Int64, "batch", "sequence"), new("attention_mask", OnnxGraphWriter.Int64, "batch", "sequence")],
            [new("Cast", ["input_ids"], ["pooler"], ("to", (long)OnnxGraphWriter.Float))],
            [new("pooler", OnnxGraphWriter.Float, "batch", "sequence")]));
        AssertTilt(() => SimilarityReward.Create(pooled, "friends", new NeuralRewardOptions { TokenizerPath = miniLm.VocabPath }),
            pooled, "output pooler float [batch, sequence]", "rank 3");

        // Missing tokenizer: nothing beside the graph and none named.
        AssertTilt(() => SimilarityReward.Create(pooled, "friends"), "vocab.txt", "tokenizer.json", "not found", "tokenizer=FILE");
    }
}
