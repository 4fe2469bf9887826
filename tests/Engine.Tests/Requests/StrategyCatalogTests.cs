using Tilt.Engine.Evaluation;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Requests;

/// <summary>
/// The strategy catalogue every front-end goes through: names and aliases, each field's check (the error names the field,
/// the value and the range), and the options it builds, compared with the records the front-ends built by hand before.
/// </summary>
public sealed class StrategyCatalogTests
{
    [Theory]
    [InlineData("bon", DecodingStrategy.BestOfN)]
    [InlineData("best-of-n", DecodingStrategy.BestOfN)]
    [InlineData("best_of_n", DecodingStrategy.BestOfN)]
    [InlineData("BON", DecodingStrategy.BestOfN)]
    [InlineData("soft-bon", DecodingStrategy.SoftBestOfN)]
    [InlineData("soft_bon", DecodingStrategy.SoftBestOfN)]
    [InlineData("soft-best-of-n", DecodingStrategy.SoftBestOfN)]
    [InlineData("soft_best_of_n", DecodingStrategy.SoftBestOfN)]
    [InlineData("tokenwise", DecodingStrategy.Tokenwise)]
    [InlineData("Token-Wise", DecodingStrategy.Tokenwise)]
    [InlineData("blockwise", DecodingStrategy.Blockwise)]
    [InlineData(" block-wise ", DecodingStrategy.Blockwise)]
    [InlineData("rejection", DecodingStrategy.Rejection)]
    [InlineData("early-rejection", DecodingStrategy.Rejection)]
    [InlineData("early_rejection", DecodingStrategy.Rejection)]
    public void Every_spelling_parses_to_its_strategy(string name, DecodingStrategy expected)
    {
        var entry = StrategyCatalog.Parse(name);
        Assert.Equal(expected, entry.Strategy);
        Assert.Same(entry, StrategyCatalog.Get(expected));
        Assert.Same(entry, StrategyCatalog.Find(entry.Name));
    }

    [Fact]
    public void Every_aligned_strategy_is_catalogued_once_and_names_are_unique()
    {
        var aligned = Enum.GetValues<DecodingStrategy>().Where(s => s is not (DecodingStrategy.Generate or DecodingStrategy.Score));
        Assert.Equal(aligned.Order(), StrategyCatalog.Entries.Select(e => e.Strategy).Order());
        var spellings = StrategyCatalog.Entries.SelectMany(e => e.Aliases.Prepend(e.Name)).ToArray();
        Assert.Equal(spellings.Length, spellings.Distinct().Count());
        Assert.Equal(["bon", "soft-bon", "tokenwise", "blockwise", "beam", "rejection"], StrategyCatalog.Entries.Select(e => e.Name));
        Assert.Throws<ArgumentException>(() => StrategyCatalog.Get(DecodingStrategy.Score));
    }

    [Theory]
    [InlineData("greedy")]
    [InlineData("")]
    [InlineData(null)]
    public void An_unknown_name_lists_the_strategies(string? name)
    {
        var e = Assert.Throws<StrategyFieldException>(() => StrategyCatalog.Parse(name));
        Assert.Equal(StrategyFields.Strategy, e.Field);
        Assert.Equal($"strategy must be bon, soft-bon, tokenwise, blockwise, beam or rejection, got '{name}'", e.Message);
        Assert.Equal($"--strategy must be bon, soft-bon, tokenwise, blockwise, beam or rejection, got '{name}'", e.MessageFor("--strategy"));
    }

    [Fact]
    public void A_front_end_can_offer_some_strategies()
    {
        DecodingStrategy[] exported = [DecodingStrategy.BestOfN, DecodingStrategy.SoftBestOfN, DecodingStrategy.Blockwise, DecodingStrategy.Rejection];
        Assert.Equal(DecodingStrategy.Rejection, StrategyCatalog.Parse("rejection", exported).Strategy);
        var e = Assert.Throws<StrategyFieldException>(() => StrategyCatalog.Parse("tokenwise", exported));
        Assert.Equal("strategy must be bon, soft-bon, blockwise or rejection, got 'tokenwise'", e.Message);
    }

    [Theory]
    [InlineData("argmax", BlockSelectionMode.Argmax)]
    [InlineData("Sample", BlockSelectionMode.Sample)]
    public void Selections_parse(string name, BlockSelectionMode expected) => Assert.Equal(expected, StrategyCatalog.ParseSelection(name));

    [Fact]
    public void A_bad_selection_names_the_field_and_the_value()
    {
        var e = Assert.Throws<StrategyFieldException>(() => StrategyCatalog.ParseSelection("best"));
        Assert.Equal("selection must be argmax or sample, got 'best'", e.Message);
        Assert.False(e.OutOfRange);
    }

    public static TheoryData<StrategySpec, string> BadFields => new()
    {
        { new() { Strategy = DecodingStrategy.BestOfN, N = 0 }, "n must be between 1 and 256, got 0" },
        { new() { Strategy = DecodingStrategy.Rejection, N = 257 }, "n must be between 1 and 256, got 257" },
        { new() { Strategy = DecodingStrategy.SoftBestOfN, N = -1 }, "n must be between 1 and 256, got -1" },
        { new() { Strategy = DecodingStrategy.Blockwise, K = 0 }, "k must be between 1 and 256, got 0" },
        { new() { Strategy = DecodingStrategy.Blockwise, Block = 0 }, "block must be at least 1, got 0" },
        { new() { Strategy = DecodingStrategy.Tokenwise, TopK = -1 }, "top_k must be at least 0 (0 = the whole vocabulary), got -1" },
        { new() { Strategy = DecodingStrategy.Tokenwise, Beta = 0 }, "beta must be a finite number >= 1E-30, got 0" },
        { new() { Strategy = DecodingStrategy.Blockwise, Beta = double.NaN }, "beta must be a finite number >= 1E-30, got NaN" },
        { new() { Strategy = DecodingStrategy.SoftBestOfN, Lambda = double.PositiveInfinity }, "lambda must be a finite number >= 1E-30, got Infinity" },
        { new() { Strategy = DecodingStrategy.SoftBestOfN, Lambda = 1e-31 }, "lambda must be a finite number >= 1E-30, got 1E-31" },
        { new() { Strategy = DecodingStrategy.Rejection, Alpha = 1 }, "alpha must be in [0, 1) (0 = best-of-n, no rejection), got 1" },
        { new() { Strategy = DecodingStrategy.Rejection, Alpha = -0.5 }, "alpha must be in [0, 1) (0 = best-of-n, no rejection), got -0.5" },
        { new() { Strategy = DecodingStrategy.Rejection, Every = 0 }, "every must be at least 1, got 0" },
        { new() { Strategy = DecodingStrategy.Rejection, DecideAt = 0 }, "decide_at must be at least 1, got 0" },
        { new() { Strategy = DecodingStrategy.Tokenwise, Samples = 0 }, "samples must be between 1 and 100000, got 0" },
        { new() { Strategy = DecodingStrategy.BestOfN, DeadlineMs = 0 }, "deadline_ms must be positive, got 0" },
    };

    [Theory]
    [MemberData(nameof(BadFields))]
    public void Each_field_is_checked_and_the_error_names_field_value_and_range(StrategySpec spec, string expected)
    {
        var e = Assert.Throws<StrategyFieldException>(() => spec.Build());
        Assert.Equal(expected, e.Message);
        Assert.Equal(e.Field, e.ParamName);
        Assert.StartsWith(e.Field + " ", e.Message);
        Assert.DoesNotContain("(Parameter", e.Message);
    }

    [Fact]
    public void Fields_the_strategy_does_not_read_are_checked_only_when_asked()
    {
        // A CLI fills every flag with a default; a JSON object names only what its sender set.
        var spec = new StrategySpec { Strategy = DecodingStrategy.BestOfN, K = 0, Beta = double.NaN, TopK = -4 };
        Assert.Equal(new BestOfNOptions(), spec.Build());
        var e = Assert.Throws<StrategyFieldException>(() => spec.Build(new StrategyLimits { CheckUnread = true }));
        Assert.Equal(StrategyFields.K, e.Field);
    }

    [Fact]
    public void A_front_ends_limits_bound_the_counts()
    {
        var server = new StrategyLimits { MaxCandidates = 64, MinTopK = 1, MaxTopK = 64, MaxBlock = 256, MaxTokens = 16 };
        var e = Assert.Throws<StrategyFieldException>(() => new StrategySpec { Strategy = DecodingStrategy.Blockwise, K = 100 }.Build(server));
        Assert.Equal("alignment.k must be between 1 and 64, got 100", e.MessageFor("alignment.k"));
        Assert.True(e.OutOfRange);
        e = Assert.Throws<StrategyFieldException>(() => new StrategySpec { Strategy = DecodingStrategy.Tokenwise, TopK = 0 }.Build(server));
        Assert.Equal("top_k must be between 1 and 64, got 0", e.Message);
        e = Assert.Throws<StrategyFieldException>(() => new StrategySpec { Strategy = DecodingStrategy.Blockwise, Block = 257 }.Build(server));
        Assert.Equal("block must be between 1 and 256, got 257", e.Message);
        e = Assert.Throws<StrategyFieldException>(() => new StrategySpec { Strategy = DecodingStrategy.Rejection, Every = 16 }.Build(server));
        Assert.Equal("every must be between 1 and 15 (a decision interval shorter than max tokens, 16), got 16", e.Message);
    }

    [Fact]
    public void Budget_modes_decision_length_must_fit_the_output_and_replaces_every()
    {
        var limits = new StrategyLimits { MaxTokens = 16 };
        var e = Assert.Throws<StrategyFieldException>(() => new StrategySpec { Strategy = DecodingStrategy.Rejection, DecideAt = 16 }.Build(limits));
        Assert.Equal("decide_at must be between 1 and 15 (a decision length shorter than max tokens, 16), got 16", e.Message);
        Assert.Equal("--decide-at must be between 1 and 15 (a decision length shorter than max tokens, 16), got 16", e.MessageFor("--decide-at"));
        // The default interval (8) need not fit when one decision at 4 tokens replaces it.
        var built = (RejectionOptions)new StrategySpec { Strategy = DecodingStrategy.Rejection, DecideAt = 4 }.Build(new StrategyLimits { MaxTokens = 8 });
        Assert.Equal(4, built.DecideAt);
        Assert.Null(((RejectionOptions)new StrategySpec { Strategy = DecodingStrategy.Rejection }.Build()).DecideAt);
    }

    [Fact]
    public void A_default_decision_interval_must_fit_the_output_too()
    {
        var rejection = new StrategySpec { Strategy = DecodingStrategy.Rejection };
        var e = Assert.Throws<StrategyFieldException>(() => rejection.Build(new StrategyLimits { MaxTokens = 8 }));
        Assert.Equal("every must be between 1 and 7 (a decision interval shorter than max tokens, 8), got 8", e.Message);
        e = Assert.Throws<StrategyFieldException>(() => rejection.Build(new StrategyLimits { MaxTokens = 1 }));
        Assert.Contains("rejection needs max tokens of at least 2", e.Message);
        // An invalid max tokens is its own field's error, reported by the options' MaxTokens.
        Assert.Equal(new RejectionOptions(), rejection.Build(new StrategyLimits { MaxTokens = 0 }));
        Assert.Equal(new RejectionOptions(), rejection.Build(new StrategyLimits { MaxTokens = 9 }));
    }

    [Fact]
    public void Unset_fields_keep_each_options_defaults()
    {
        Assert.Equal(new BestOfNOptions(), new StrategySpec { Strategy = DecodingStrategy.BestOfN }.Build());
        Assert.Equal(new SoftBestOfNOptions(), new StrategySpec { Strategy = DecodingStrategy.SoftBestOfN }.Build());
        Assert.Equal(new TokenwiseOptions(), new StrategySpec { Strategy = DecodingStrategy.Tokenwise }.Build());
        Assert.Equal(new BlockwiseOptions(), new StrategySpec { Strategy = DecodingStrategy.Blockwise }.Build());
        Assert.Equal(new RejectionOptions(), new StrategySpec { Strategy = DecodingStrategy.Rejection }.Build());
    }

    /// <summary>What `tilt align` built by hand from its flags (n 8, k 8, block 8, top-k 16, beta 1, lambda 1, alpha 0.5, every 8).</summary>
    public static TheoryData<StrategySpec, AlignOptions> CliFlags => new()
    {
        { Cli(DecodingStrategy.BestOfN), new BestOfNOptions { N = 8, ReturnCandidates = true, Samples = 3, Deadline = TimeSpan.FromMilliseconds(250) } },
        { Cli(DecodingStrategy.SoftBestOfN), new SoftBestOfNOptions { N = 8, Lambda = 0.5, ReturnCandidates = true, Samples = 3, Deadline = TimeSpan.FromMilliseconds(250) } },
        { Cli(DecodingStrategy.Rejection), new RejectionOptions { N = 8, Alpha = 0.25, Every = 4, ReturnCandidates = true, Samples = 3, Deadline = TimeSpan.FromMilliseconds(250) } },
        { Cli(DecodingStrategy.Tokenwise), new TokenwiseOptions { Candidates = 0, Beta = 2, Samples = 3, Deadline = TimeSpan.FromMilliseconds(250) } },
        {
            Cli(DecodingStrategy.Blockwise),
            new BlockwiseOptions { K = 6, BlockSize = 5, Selection = BlockSelectionMode.Sample, Beta = 2, Samples = 3, Deadline = TimeSpan.FromMilliseconds(250) }
        },
    };

    private static StrategySpec Cli(DecodingStrategy strategy) => new()
    {
        Strategy = strategy, N = 8, K = 6, Block = 5, Selection = BlockSelectionMode.Sample, Beta = 2, TopK = 0, Lambda = 0.5, Alpha = 0.25, Every = 4,
        Samples = 3, DeadlineMs = 250, ReturnCandidates = true,
    };

    [Theory]
    [MemberData(nameof(CliFlags))]
    public void Every_field_reaches_the_options_the_front_ends_built_by_hand(StrategySpec spec, AlignOptions expected) =>
        Assert.Equal(expected, spec.Build(new StrategyLimits { MaxTokens = 128 }));

    [Fact]
    public void Sweep_points_build_the_options_the_evaluator_built_by_hand()
    {
        Assert.Equal(new BestOfNOptions { N = 16 }, new EvaluationConfig(EvaluationMethod.BestOfN, N: 16).Spec.Build());
        Assert.Equal(new SoftBestOfNOptions { N = 16, Lambda = 0.25 }, new EvaluationConfig(EvaluationMethod.SoftBestOfN, N: 16, Beta: 0.25).Spec.Build());
        Assert.Equal(new RejectionOptions { N = 32, Alpha = 0.5, Every = 8 }, new EvaluationConfig(EvaluationMethod.Rejection, N: 32, M: 8, Beta: 0.5).Spec.Build());
        Assert.Equal(new BlockwiseOptions { K = 4, BlockSize = 16 }, new EvaluationConfig(EvaluationMethod.Blockwise, K: 4, M: 16).Spec.Build());
        Assert.Equal(new TokenwiseOptions { Candidates = 0, Beta = 0.5 }, new EvaluationConfig(EvaluationMethod.Tokenwise, K: 0, Beta: 0.5).Spec.Build());
    }

    [Fact]
    public void Only_the_reward_ranked_strategies_ignore_a_value()
    {
        Assert.Equal(
            [DecodingStrategy.Tokenwise, DecodingStrategy.Blockwise, DecodingStrategy.Beam, DecodingStrategy.Rejection],
            StrategyCatalog.Entries.Where(e => e.ReadsValue).Select(e => e.Strategy));
    }

    [Fact]
    public void Every_field_a_strategy_reads_reaches_its_options()
    {
        // Setting one read field away from its default must change the built options: no field is read and then dropped.
        var changed = new StrategySpec
        {
            Strategy = DecodingStrategy.BestOfN, N = 3, K = 3, Block = 3, Beams = 3, TopK = 3, Beta = 3, Alpha = 0.3, Every = 3, DecideAt = 3, Lambda = 3,
            Selection = BlockSelectionMode.Sample, ReturnCandidates = true,
        };
        foreach (var entry in StrategyCatalog.Entries)
        {
            var defaults = new StrategySpec { Strategy = entry.Strategy }.Build();
            foreach (string field in entry.Fields)
            {
                var one = Only(changed with { Strategy = entry.Strategy }, field);
                Assert.NotEqual(defaults, one.Build());
            }
        }
    }

    private static StrategySpec Only(StrategySpec all, string field) => new()
    {
        Strategy = all.Strategy,
        N = field == StrategyFields.N ? all.N : null,
        K = field == StrategyFields.K ? all.K : null,
        Block = field == StrategyFields.Block ? all.Block : null,
        Beams = field == StrategyFields.Beams ? all.Beams : null,
        TopK = field == StrategyFields.TopK ? all.TopK : null,
        Beta = field == StrategyFields.Beta ? all.Beta : null,
        Alpha = field == StrategyFields.Alpha ? all.Alpha : null,
        Every = field == StrategyFields.Every ? all.Every : null,
        DecideAt = field == StrategyFields.DecideAt ? all.DecideAt : null,
        Lambda = field == StrategyFields.Lambda ? all.Lambda : null,
        Selection = field == StrategyFields.Selection ? all.Selection : null,
        ReturnCandidates = field == StrategyFields.ReturnCandidates ? all.ReturnCandidates : null,
    };
}
