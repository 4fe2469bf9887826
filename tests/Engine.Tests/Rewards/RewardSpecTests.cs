using Tilt.Engine.Rewards;
using static Tilt.Engine.Tests.Rewards.RewardTestData;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Engine.Tests.Rewards;

public sealed class RewardSpecTests : IDisposable
{
    private readonly TempDirectory _files = new();
    private readonly RewardSpecContext _context;
    private readonly List<string> _heads = [];

    public RewardSpecTests()
    {
        _files.Write("words.txt", "happy\nsad\t-2\n");
        _context = new RewardSpecContext
        {
            BaseDirectory = _files.Path,
            LexiconDirectory = SourceLexiconDirectory,
            HeadRewardFactory = path =>
            {
                _heads.Add(path);
                return new CallbackReward(c => c.FinalHidden.Span[0], "head:" + path, needsHiddenState: true);
            },
        };
    }

    public void Dispose() => _files.Dispose();

    private IReward Parse(string spec) => RewardSpec.Parse(spec, _context);

    /// <summary>Candidates every spec here can score: varied words, lengths, finish states and a hidden state.</summary>
    private static readonly RewardInput[] Sample =
    [
        Candidate("happy happy sad", tokens: 12, finished: true, hidden: [0.25f]),
        Candidate("aab x+y 42 (a) ;b fun", tokens: 40, finished: false, hidden: [-1f]),
        Candidate("", tokens: 1, finished: true, hidden: [3f]),
    ];

    [Fact]
    public void A_single_term_is_the_reward_itself()
    {
        var length = Assert.IsType<LengthReward>(Parse("length:40"));
        Assert.Equal(40, length.Target);
        Assert.IsType<LengthReward>(Parse("  1 * length:40 "));
        Assert.Equal(@"\bhappy\b", Assert.IsType<RegexReward>(Parse(@"regex:\bhappy\b")).Pattern);
        Assert.Equal("lexicon:sentiment", Assert.IsType<LexiconReward>(Parse("lexicon:sentiment")).Description);
    }

    [Fact]
    public void Weighted_sums_with_spaces_and_negative_weights()
    {
        var reward = Assert.IsType<WeightedReward>(Parse(" 0.7 * lexicon:positive + 0.3 * length:40 "));
        Assert.Equal("0.7*lexicon:positive+0.3*length:40", reward.Description);
        Assert.Equal([0.7, 0.3], reward.Terms.Select(t => t.Weight));

        var penalty = Parse("lexicon:words.txt+-0.5*length:10");
        Assert.Equal($"lexicon:{Path.Combine(_files.Path, "words.txt")}+-0.5*length:10", penalty.Description);
        // "happy happy sad": 1 + 1 - 2 = 0; n = 11: -0.5 * -(1/10).
        Assert.Equal(0.05, Score(penalty, Sample[0])[0], 1e-15);
        Assert.Equal("-0.5*length:10", Parse("-0.5*length:10").Description);
        Assert.Equal("1000*length:3", Parse("1e+3*length:3").Description);
        Assert.Equal("length:3+1000*length:4", Parse("length:3+1e+3*length:4").Description);
    }

    [Theory]
    [InlineData("regex:a+b*c", "a+b*c")]
    [InlineData("regex:x+y", "x+y")]
    [InlineData("regex:a+length", "a+length")]            // no ':' after the name: not a term
    [InlineData("regex:a+foo:3", "a+foo:3")]              // unknown kinds do not split
    [InlineData("regex:(a+length:b)", "(a+length:b)")]     // inside parentheses
    [InlineData(@"regex:a\+length:3", @"a\+length:3")]    // escaped '+'
    [InlineData("regex:a[+length:]", "a[+length:]")]      // inside a character class
    [InlineData("regex:[]+length:]", "[]+length:]")]      // ']' first in a class is literal
    [InlineData("regex:a;b", "a;b")]                      // ';' only separates ensemble members
    [InlineData("regex:2*x", "2*x")]
    public void Regex_patterns_keep_plus_star_and_semicolons(string spec, string pattern)
    {
        Assert.Equal(pattern, Assert.IsType<RegexReward>(Parse(spec)).Pattern);
    }

    [Fact]
    public void Plus_splits_before_a_known_kind_with_an_optional_weight()
    {
        var sum = Assert.IsType<WeightedReward>(Parse(@"regex:\d+x+length:3"));
        Assert.Equal([@"regex:\d+x", "length:3"], sum.Terms.Select(t => t.Reward.Description));
        var weighted = Assert.IsType<WeightedReward>(Parse("regex:a+b + 2 * regex:c*"));
        Assert.Equal("regex:a+b+2*regex:c*", weighted.Description);
        Assert.Equal([1.0, 2.0], weighted.Terms.Select(t => t.Weight));
    }

    [Fact]
    public void Ensembles_nest_and_take_weighted_sums()
    {
        var mean = Assert.IsType<RewardEnsemble>(Parse("mean(length:10; 0.5*length:20+regex:x)"));
        Assert.Equal(EnsembleMode.Mean, mean.Mode);
        Assert.Equal("mean(length:10;0.5*length:20+regex:x)", mean.Description);

        var nested = Assert.IsType<RewardEnsemble>(Parse("meanstd(0.5; min(length:5;length:10); mean(regex:a;length:3))"));
        Assert.Equal(EnsembleMode.MeanMinusStd, nested.Mode);
        Assert.Equal(0.5, nested.Lambda);
        Assert.Equal("meanstd(0.5;min(length:5;length:10);mean(regex:a;length:3))", nested.Description);

        var weighted = Assert.IsType<WeightedReward>(Parse("2*mean(length:5;length:10)+length:3"));
        Assert.Equal("2*mean(length:5;length:10)+length:3", weighted.Description);
        // n = 11: 2 * mean(-6/5, -1/10) - 8/3.
        Assert.Equal(2 * (-1.2 - 0.1) / 2 - 8.0 / 3.0, Score(weighted, Sample[0])[0], 1e-14);
    }

    [Fact]
    public void Ensemble_members_may_hold_regexes_with_parentheses_escapes_and_classes()
    {
        var mean = Assert.IsType<RewardEnsemble>(Parse(@"mean(regex:(a|b)\);regex:[;)]x;regex:a\;b)"));
        Assert.Equal([@"(a|b)\)", "[;)]x", @"a\;b"], mean.Members.Select(m => Assert.IsType<RegexReward>(m).Pattern));
    }

    [Fact]
    public void Paths_resolve_against_the_base_directory_and_heads_come_from_the_factory()
    {
        var lexicon = Assert.IsType<LexiconReward>(Parse("lexicon:words.txt"));
        Assert.Equal(-2.0, lexicon.Weights["sad"]);
        string absolute = Path.Combine(_files.Path, "words.txt");
        Assert.Equal("lexicon:" + absolute, Parse("lexicon:" + absolute).Description);

        IReward head = Parse("0.5*head:models/reward.head");
        Assert.Equal([Path.Combine(_files.Path, "models", "reward.head")], _heads);
        Assert.True(head.NeedsHiddenState);
        Assert.Equal([0.125, -0.5, 1.5], Score(head, Sample));
    }

    [Fact]
    public void The_default_context_resolves_against_the_current_directory()
    {
        string relative = Path.GetRelativePath(Directory.GetCurrentDirectory(), Path.Combine(_files.Path, "words.txt"));
        Assert.Equal("lexicon:" + Path.Combine(_files.Path, "words.txt"), RewardSpec.Parse("lexicon:" + relative).Description);
    }

    [Theory]
    [InlineData("length:40")]
    [InlineData("0.7*lexicon:positive+0.3*length:40")]
    [InlineData(" lexicon:negative + 1 * length:4 ")]
    [InlineData("lexicon:words.txt + -0.5 * length:10 + 1e-3*regex:(?i)happy")]
    [InlineData(@"regex:\d+x+length:3+regex:a[+length:]")]
    [InlineData("0.1*length:3+0.2*length:5")]
    [InlineData("mean(length:10;0.5*length:20+regex:x)")]
    [InlineData("min(lexicon:sentiment;-1*length:7)")]
    [InlineData("meanstd(0.75;head:a.head;head:b.head;length:12)")]
    [InlineData("-2*meanstd(0;mean(min(length:1;length:2));length:3)+regex:\\(a\\)")]
    [InlineData(@"mean(regex:(a|b)\);regex:[;)]x;regex:a\;b)")]
    [InlineData("mean(calibrated(lexicon:sentiment);calibrated(1000*length:5+regex:a))")]
    public void Description_is_canonical_and_parses_back_to_an_equivalent_reward(string spec)
    {
        IReward first = Parse(spec);
        IReward second = Parse(first.Description);
        Assert.Equal(first.Description, second.Description);
        Assert.Equal(Score(first, Sample), Score(second, Sample));
        Assert.DoesNotContain(" ", first.Description);
    }

    [Theory]
    [InlineData("", "empty spec")]
    [InlineData("   ", "empty spec")]
    [InlineData("foo:bar", "unknown kind 'foo' in 'foo:bar'")]
    [InlineData("length:3+0.5*Length:4", "bad length target '3+0.5*Length:4'", "'Length' is not one")]
    [InlineData("length:3+lenght:4", "'lenght' is not one")]
    [InlineData("length:", "missing argument after 'length:'")]
    [InlineData("length:   +regex:a", "missing argument after 'length:'")]
    [InlineData("regex:", "missing argument after 'regex:'")]
    [InlineData("length", "missing argument: 'length' needs ':'")]
    [InlineData("0.5*lexicon", "missing argument: 'lexicon' needs ':'")]
    [InlineData("length:abc", "bad length target 'abc'")]
    [InlineData("length:0", "bad length target '0'")]
    [InlineData("length:-3", "bad length target '-3'")]
    [InlineData("length:2.5", "bad length target '2.5'")]
    [InlineData("x*length:3", "bad weight 'x'")]
    [InlineData("0.7.1*length:3", "bad weight '0.7.1'")]
    [InlineData("NaN*length:3", "bad weight 'NaN'")]
    [InlineData("1e999*length:3", "bad weight '1e999'")]
    [InlineData("length:3+2*mean(length:1;x*length:2)", "bad weight 'x'")]
    [InlineData("-length:3", "bad weight '-'", "-1*length:")]
    [InlineData("mean(length:3", "unbalanced parentheses: 'mean(' at position 0 is not closed")]
    [InlineData("length:1+min(length:3;length:4", "unbalanced parentheses: 'min(' at position 9 is not closed")]
    [InlineData("mean(length:3;", "'mean(' at position 0 is not closed")]
    [InlineData("meanstd(", "'meanstd(' at position 0 is not closed")]
    [InlineData("length:3)", "unbalanced parentheses: ')' at position 8 has no matching '('")]
    [InlineData("mean(length:3))", "unbalanced parentheses: ')' at position 14")]
    [InlineData("(length:3)", "unexpected '(' at '(length:3)'")]
    [InlineData("mean()", "empty term before ')'")]
    [InlineData("mean(length:3;)", "empty term before ')'")]
    [InlineData("mean(;length:3)", "empty term before ';length:3)'")]
    [InlineData("+length:3", "empty term before '+length:3'")]
    [InlineData("mean(length:3)+", "missing term at the end, after 'mean(length:3)+'")]
    [InlineData("mean(length:3)length:4", "unexpected 'length:4' after a complete term")]
    [InlineData("mean(length:3 length:4)", "bad length target '3 length:4'")]
    [InlineData("meanstd(length:3;length:4)", "bad lambda 'length:3'")]
    [InlineData("meanstd(-1;length:3)", "bad lambda '-1'")]
    [InlineData("meanstd(;length:3)", "bad lambda ''")]
    [InlineData("meanstd(0.5)", "'meanstd(0.5)' has no members after lambda")]
    [InlineData("avg(length:3)", "unknown ensemble 'avg('")]
    [InlineData("length(3)", "unknown ensemble 'length(': 'length' is a kind, written length:TOKENS")]
    [InlineData("length:3;length:4", "bad length target '3;length:4'", "';' separates the members of an ensemble only")]
    [InlineData("mean", "'mean' is an ensemble and needs its members in parentheses")]
    [InlineData("mean:3", "unknown kind 'mean' in 'mean:3'")]
    [InlineData("0.5 length:3", "expected a term (KIND:ARG, WEIGHT*KIND:ARG or mean/min/meanstd/calibrated(...)) at '0.5 length:3'")]
    [InlineData("regex:(", "invalid regex '('")]
    [InlineData("regex:a{2,1}", "invalid regex 'a{2,1}'")]
    [InlineData("lexicon:missing.txt", "missing.txt: lexicon file not found")]
    [InlineData("lexicon:happy", "happy: lexicon file not found, and 'happy' is not a built-in lexicon (built-in: lexicon:positive, lexicon:negative, lexicon:sentiment)")]
    [InlineData("lexicon:positive+lenght:3", "positive+lenght:3: lexicon file not found", "'lenght' is not one")]
    public void Errors_quote_the_spec_and_the_offending_part(string spec, params string[] parts)
    {
        string message = AssertTilt(() => Parse(spec), [$"reward spec '{spec}': ", .. parts]);
        Assert.DoesNotContain("reward spec", message[("reward spec".Length)..], StringComparison.Ordinal);  // wrapped once
    }

    [Fact]
    public void Head_without_a_model_is_an_error_saying_a_model_is_needed()
    {
        AssertTilt(() => RewardSpec.Parse("0.5*head:reward.head+length:3", new RewardSpecContext()),
            "reward spec '0.5*head:reward.head+length:3': 'head:reward.head' needs a loaded model");
    }

    [Fact]
    public void Errors_from_files_and_factories_keep_their_detail()
    {
        string bad = _files.Write("bad.txt", "happy\nsad\tlots\n");
        var e = Assert.ThrowsAny<TiltException>(() => Parse("0.5*lexicon:bad.txt"));
        Assert.Equal($"reward spec '0.5*lexicon:bad.txt': {bad}:2: bad weight 'lots' for 'sad' (expected a finite number such as 1, -1 or 0.5)", e.Message);
        Assert.IsType<TiltException>(e.InnerException, exactMatch: false);

        var failing = new RewardSpecContext { HeadRewardFactory = path => throw new ModelLoadException(path, "not a reward head") };
        AssertTilt(() => RewardSpec.Parse("head:x.head", failing), "reward spec 'head:x.head': ", "x.head: not a reward head");
    }

    [Fact]
    public void Nesting_is_limited()
    {
        string Nest(int depth) => string.Concat(Enumerable.Repeat("mean(", depth)) + "length:3" + new string(')', depth);
        Assert.Equal(Nest(RewardSpec.MaxNesting), Parse(Nest(RewardSpec.MaxNesting)).Description);
        AssertTilt(() => Parse(Nest(RewardSpec.MaxNesting + 1)), $"nested deeper than {RewardSpec.MaxNesting} levels");
    }

    [Fact]
    public void Help_lists_the_grammar()
    {
        string help = RewardSpec.Describe();
        foreach (string word in RewardSpec.Kinds.Concat(RewardSpec.EnsembleNames).Concat(["lexicon:sentiment", "W*KIND:ARG", "A+B", "meanstd(L;A;B;...)", "[M21]", "[M22]"]))
        {
            Assert.Contains(word, help, StringComparison.Ordinal);
        }
    }
}
