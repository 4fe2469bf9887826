using Tilt.Engine.Rewards;
using static Tilt.Engine.Tests.Rewards.RewardTestData;

namespace Tilt.Engine.Tests.Rewards;

public sealed class LexiconRewardTests : IDisposable
{
    private readonly TempDirectory _files = new();

    public void Dispose() => _files.Dispose();

    private static List<string> Words(string text)
    {
        var words = new List<string>();
        foreach (ReadOnlySpan<char> word in LexiconWords.Enumerate(text))
        {
            words.Add(word.ToString());
        }

        return words;
    }

    [Fact]
    public void Words_are_runs_of_letters_digits_and_apostrophes_without_apostrophes_at_the_ends()
    {
        Assert.Equal(
            ["Happy", "HAPPY", "day", "well", "known", "don't", "happy", "children's", "quoted", "café", "42", "x2", "don’t", "naïve"],
            Words("Happy, HAPPY day! well-known don't 'happy' children's ’quoted’ café 42 x2... don’t naïve"));
        Assert.Equal(["e\u0301t\u00e9"], Words("(e\u0301t\u00e9)"));  // a combining accent stays inside its word
        Assert.Empty(Words(""));
        Assert.Empty(Words(" ,.!? '' ’ -- "));
    }

    [Fact]
    public void Score_sums_weights_of_whole_word_case_insensitive_matches()
    {
        var reward = new LexiconReward(new Dictionary<string, double> { ["happy"] = 1.0, ["sad"] = -1.0, ["don't"] = 0.5, ["smile"] = 2.0 });
        double[] r = Score(reward,
            "Happy, happy day!",            // 1 + 1
            "unhappy sadness",              // whole words only: 0
            "She was SAD. Sad!",            // -1 - 1
            "I don't smile; I don’t",       // 0.5 + 2 + 0.5 (’ reads as ')
            "she smiled happily",           // no inflections: 0
            "'happy' - sad - happy",        // quotes and dashes separate: 1 - 1 + 1
            "");
        Assert.Equal([2.0, 0.0, -2.0, 3.0, 0.0, 1.0, 0.0], r);
    }

    [Fact]
    public void Only_the_continuation_is_scored_not_the_prompt()
    {
        var reward = new LexiconReward(new Dictionary<string, double> { ["once"] = 1.0 });
        Assert.Equal([0.0], Score(reward, Candidate("a story")));  // the prompt is "Once upon a time"
    }

    [Fact]
    public void Dictionary_entries_are_normalized_and_checked()
    {
        var reward = new LexiconReward(new Dictionary<string, double> { ["  Happy "] = 1.5, ["'Tis"] = 1.0, ["Don’t"] = -1.0 });
        Assert.Equal(new Dictionary<string, double> { ["happy"] = 1.5, ["tis"] = 1.0, ["don't"] = -1.0 }, reward.Weights.ToDictionary());
        Assert.Equal("lexicon(3 words)", reward.Description);
        Assert.Equal("mine", new LexiconReward(new Dictionary<string, double> { ["a"] = 1 }, "mine").Description);

        Assert.Contains("'ice cream' is not a single word", Assert.Throws<ArgumentException>(() => new LexiconReward(new Dictionary<string, double> { ["ice cream"] = 1 })).Message);
        Assert.Contains("empty word", Assert.Throws<ArgumentException>(() => new LexiconReward(new Dictionary<string, double> { ["''"] = 1 })).Message);
        Assert.Contains("empty word", Assert.Throws<ArgumentException>(() => new LexiconReward(new Dictionary<string, double> { [" "] = 1 })).Message);
        Assert.Contains("'happy' appears twice", Assert.Throws<ArgumentException>(() => new LexiconReward(new Dictionary<string, double> { ["happy"] = 1, ["HAPPY"] = 2 })).Message);
        Assert.Contains("must be finite", Assert.Throws<ArgumentException>(() => new LexiconReward(new Dictionary<string, double> { ["happy"] = double.NaN })).Message);
        Assert.Contains("at least one word", Assert.Throws<ArgumentException>(() => new LexiconReward(new Dictionary<string, double>())).Message);
    }

    [Fact]
    public void Sums_that_overflow_are_a_non_finite_error_naming_the_candidate()
    {
        var reward = new LexiconReward(new Dictionary<string, double> { ["big"] = 1e308 }, "huge");
        AssertTilt(() => Score(reward, "fine", "big big"), "reward 'huge'", "Infinity", "candidate 1");
    }

    [Fact]
    public void File_has_words_optional_tab_weights_comments_and_blank_lines()
    {
        string path = _files.Write("words.txt",
            "\uFEFF# a comment\r\n" +
            "happy\r\n" +
            "\r\n" +
            "   # an indented comment\n" +
            "sad\t-1\n" +
            "  Smile  \t 2.5 \n" +
            "tiny\t1e-3\n" +
            "plain\t\n");
        var reward = LexiconReward.Load(path);
        Assert.Equal(
            new Dictionary<string, double> { ["happy"] = 1.0, ["sad"] = -1.0, ["smile"] = 2.5, ["tiny"] = 0.001, ["plain"] = 1.0 },
            reward.Weights.ToDictionary());
        Assert.Equal("lexicon:" + path, reward.Description);
        Assert.Equal([1.0 - 1.0 + 2.5 + 2.5], Score(reward, "happy, sad SMILE smile"));
    }

    [Fact]
    public void Relative_paths_are_described_by_their_full_path()
    {
        string path = _files.Write("rel.txt", "happy\n");
        string relative = Path.GetRelativePath(Directory.GetCurrentDirectory(), path);
        Assert.Equal("lexicon:" + path, LexiconReward.Load(relative).Description);
    }

    [Theory]
    [InlineData("happy\nsad\tlots\n", 2, "bad weight 'lots' for 'sad'")]
    [InlineData("happy\nsad\t1.0.0\n", 2, "bad weight '1.0.0'")]
    [InlineData("happy\n\nsad\tNaN\n", 3, "bad weight 'NaN'")]
    [InlineData("happy\nsad\t1\t2\n", 2, "bad weight '1\t2'")]
    [InlineData("# c\n\t2\n", 2, "empty word")]
    [InlineData("happy\n'' \t2\n", 2, "empty word")]
    [InlineData("happy 2\n", 1, "'happy 2' is not a single word")]
    [InlineData("happy!\n", 1, "'happy!' is not a single word")]
    [InlineData("happy\nsad\nHappy\t2\n", 3, "'happy' is already on line 1")]
    public void File_errors_name_the_file_and_line(string content, int line, string problem)
    {
        string path = _files.Write("bad.txt", content);
        AssertTilt(() => LexiconReward.Load(path), $"{path}:{line}: ", problem);
    }

    [Fact]
    public void A_space_where_a_tab_belongs_gets_a_hint()
    {
        string path = _files.Write("spaces.txt", "happy 2\n");
        AssertTilt(() => LexiconReward.Load(path), "separate a weight from its word with a TAB");
    }

    [Fact]
    public void Missing_unreadable_and_empty_files_name_the_path()
    {
        string missing = Path.Combine(_files.Path, "missing.txt");
        AssertTilt(() => LexiconReward.Load(missing), missing, "not found");
        AssertTilt(() => LexiconReward.Load(Path.Combine(_files.Path, "no-dir", "x.txt")), Path.Combine(_files.Path, "no-dir", "x.txt"), "not found");
        AssertTilt(() => LexiconReward.Load(_files.Path), _files.Path, "is a folder, not a lexicon file");
        string empty = _files.Write("empty.txt", "# only comments\n\n   \n");
        AssertTilt(() => LexiconReward.Load(empty), empty, "no words");
    }

    [Fact]
    public void Built_in_lists_are_disjoint_children_words_with_weight_one()
    {
        var positive = LexiconReward.LoadBuiltIn("positive", SourceLexiconDirectory);
        var negative = LexiconReward.LoadBuiltIn("negative", SourceLexiconDirectory);
        Assert.InRange(positive.Weights.Count, 40, 60);
        Assert.InRange(negative.Weights.Count, 40, 60);
        Assert.All(positive.Weights.Values.Concat(negative.Weights.Values), w => Assert.Equal(1.0, w));
        Assert.Empty(positive.Weights.Keys.Intersect(negative.Weights.Keys));
        Assert.All(["happy", "fun", "love", "smile"], w => Assert.Contains(w, positive.Weights.Keys));
        Assert.All(["sad", "cry", "angry", "scared"], w => Assert.Contains(w, negative.Weights.Keys));
        Assert.Equal("lexicon:positive", positive.Description);
        Assert.Equal("lexicon:negative", negative.Description);
    }

    [Fact]
    public void Sentiment_is_positive_minus_negative()
    {
        var sentiment = LexiconReward.LoadBuiltIn("sentiment", SourceLexiconDirectory);
        Assert.Equal("lexicon:sentiment", sentiment.Description);
        Assert.Equal(1.0, sentiment.Weights["happy"]);
        Assert.Equal(-1.0, sentiment.Weights["sad"]);
        Assert.Equal([1.0 + 1.0 - 1.0 - 1.0 - 1.0], Score(sentiment, "The happy dog had fun, then felt sad, cried and was scared."));
    }

    [Fact]
    public void Unknown_or_missing_built_ins_are_errors()
    {
        Assert.Contains("known: positive, negative, sentiment", Assert.Throws<ArgumentException>(() => LexiconReward.LoadBuiltIn("joyful", SourceLexiconDirectory)).Message);
        AssertTilt(() => LexiconReward.LoadBuiltIn("sentiment", _files.Path), "built-in lexicon 'positive' is missing", Path.Combine(_files.Path, "positive.txt"));
    }

    [Fact]
    public void Built_in_lists_are_embedded_in_the_engine()
    {
        // Needs the engine project to embed Rewards/Lexicons/*.txt (a package consumer has no such folder).
        Assert.Equal(
            ["Tilt.Engine.Rewards.Lexicons.negative.txt", "Tilt.Engine.Rewards.Lexicons.positive.txt"],
            typeof(LexiconReward).Assembly.GetManifestResourceNames().Where(n => n.Contains(".Lexicons.")).Order());
        Assert.Equal(
            LexiconReward.LoadBuiltIn("sentiment", SourceLexiconDirectory).Weights.ToDictionary(),
            LexiconReward.LoadBuiltIn("sentiment").Weights.ToDictionary());
    }
}
