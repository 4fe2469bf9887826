using Tilt.Engine.Heads;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Tests.Models;
using Tilt.Engine.Training;
using Tilt.Kernels;

namespace Tilt.Engine.Tests.Training;

/// <summary>
/// Held-out R^2 by prefix length beside the prefix reward's corr^2: computed by the trainer, stored in the head file
/// (optional field <c>heldOutByPrefixLength</c>) and turned into a warning when the head explains less.
/// </summary>
public sealed class ValueHeadMetricsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-headmetrics-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static HeadHeader Header(IReadOnlyList<HeldOutAccuracy>? metrics, HeadRole role = HeadRole.Value) => new()
    {
        Kind = HeadKind.Linear, Role = role, ModelFingerprint = "sha256:abc", HiddenSize = 2, HeldOutByPrefixLength = metrics,
    };

    private static readonly HeldOutAccuracy[] Metrics =
    [
        new() { From = 0, To = 0, Rows = 10, RSquared = null, PrefixRewardR2 = null },
        new() { From = 1, To = 3, Rows = 30, RSquared = 0.2, PrefixRewardR2 = 0.1 },
        new() { From = 4, To = 7, Rows = 40, RSquared = 0.05, PrefixRewardR2 = 0.3 },
    ];

    [Fact]
    public void The_metrics_round_trip_through_a_head_file()
    {
        string path = Path.Combine(_dir, "m.head");
        new HeadFile(Header(Metrics), [0.5f, -1f, 2f]).Write(path);
        Assert.Equal(Metrics, HeadFile.Read(path).Header.HeldOutByPrefixLength);
    }

    [Fact]
    public void A_head_without_metrics_reads_and_gives_no_warning()
    {
        string path = Path.Combine(_dir, "old.head");
        new HeadFile(Header(null), [0.5f, -1f, 2f]).Write(path);
        var header = HeadFile.Read(path).Header;
        Assert.Null(header.HeldOutByPrefixLength);
        Assert.Null(HeldOutAccuracy.Warning(path, header, 8));
    }

    [Fact]
    public void Only_value_heads_carry_metrics_and_a_range_needs_its_ends()
    {
        var e = Assert.Throws<ArgumentException>(() => new HeadFile(Header(Metrics, HeadRole.Reward), [0.5f, -1f, 2f]));
        Assert.Contains("field 'heldOutByPrefixLength' is for value heads only", e.Message);

        string path = Path.Combine(_dir, "noto.head");
        new HeadFile(Header(Metrics), [0.5f, -1f, 2f]).Write(path);
        byte[] bytes = File.ReadAllBytes(path);
        string text = System.Text.Encoding.Latin1.GetString(bytes).Replace("\"to\":0,", "\"tx\":0,", StringComparison.Ordinal);
        File.WriteAllBytes(path, System.Text.Encoding.Latin1.GetBytes(text));
        var bad = Assert.Throws<TiltException>(() => HeadFile.Read(path));
        Assert.Contains("corrupt head header", bad.Message);
        Assert.Contains("'to'", bad.Message);
    }

    [Fact]
    public void The_warning_compares_the_range_of_the_decision_length()
    {
        var header = Header(Metrics);
        Assert.Null(HeldOutAccuracy.Warning("v.head", header, 0)); // no metrics for length 0
        Assert.Null(HeldOutAccuracy.Warning("v.head", header, 1)); // 0.2 >= 0.1
        Assert.Equal("warning: value head v.head explains R^2=0.05 at length 8 (held-out prefixes of 4-7 tokens), below the prefix reward's 0.3; " +
            "the prefix reward may steer better (docs/training.md)", HeldOutAccuracy.Warning("v.head", header, 8)); // past the last range: the last range
        Assert.Contains("at length 5 (held-out prefixes of 4-7 tokens)", HeldOutAccuracy.Warning("v.head", header, 5));
    }

    [Fact]
    public void The_squared_correlation_is_exact()
    {
        // Three rollouts with one prefix each at lengths 2, 2, 9: a = (1, 2, 3), b = (2, 4, 7) with weights (1, 1, 2) on
        // length 0..9. Weighted means 9/4 and 5; deviations a: (-5/4, -1/4, 3/4), b: (-3, -1, 2);
        // Saa = 25/16 + 1/16 + 2 * 9/16 = 44/16, Sbb = 9 + 1 + 8 = 18, Sab = 15/4 + 1/4 + 2 * 6/4 = 7.
        var rollouts = new[] { 2, 2, 9 }.Select((t, i) => new Rollout
        {
            PromptIndex = 0, Tokens = new int[t], Text = "", Finished = false, Reward = 0, Weight = i == 2 ? 2 : 1,
            Positions = [t], Features = new float[1],
        }).ToArray();
        var set = new RolloutSet("sha256:abc", 1, [""], [[]], rollouts, 16, "test");
        var rows = PrefixRows.All(set, [0, 1, 2]);
        double expected = 7.0 * 7.0 / (44.0 / 16 * 18);
        Assert.Equal(expected, PrefixRewardBaseline.SquaredCorrelation(rows, [1, 2, 3], [2, 4, 7], [1, 1, 2], 0, 9), 12);
        Assert.Equal(1.0, PrefixRewardBaseline.SquaredCorrelation(rows, [1, 2, 3], [2, 4, 7], [1, 1, 2], 2, 2), 12); // two points
        Assert.True(double.IsNaN(PrefixRewardBaseline.SquaredCorrelation(rows, [1, 2, 3], [2, 4, 7], [1, 1, 2], 9, 9))); // one point
        Assert.True(double.IsNaN(PrefixRewardBaseline.SquaredCorrelation(rows, [5, 5, 5], [2, 4, 7], [1, 1, 2], 0, 9))); // constant
    }

    [Fact]
    public void Training_stores_the_prefix_reward_baseline_and_the_warning_fires_where_it_wins()
    {
        // The tabular chain always starts "the", then "cat" or "dog"; the reward is 1 for "cat". From 2 tokens on, the
        // prefix holds the deciding word, so the prefix reward IS the final reward: corr^2 = 1 exactly at 4-7 tokens,
        // while a head on the one-hot state of the last word ("happy", "home", ...) cannot tell cat from dog there.
        using var model = TabularModel.Load(TabularModelTests.ExamplePath());
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        int cat = Enumerable.Range(0, model.Info.VocabularySize).Single(t => model.TokenText(t) == "cat");
        var reward = new CallbackReward(c => c.Tokens.Count > 1 && c.Tokens[1] == cat ? 1 : 0, "second-is-cat");
        var set = new RolloutCollector(model, kernels, reward).Collect([""], new RolloutOptions { Rollouts = 1000, MaxTokens = 30, BatchSize = 256, Seed = 3 });
        var result = new ValueTrainer(model, reward).Train(set, new ValueTrainingOptions { Seed = 1 });

        var buckets = result.Report.HeldOut.ByPrefixLength;
        Assert.True(double.IsNaN(buckets.Single(b => b.From == 0).PrefixRewardRSquared)); // the empty prefix: constant
        var four = buckets.Single(b => b.From == 4);
        Assert.Equal(1.0, four.PrefixRewardRSquared, 12);
        Assert.True(four.RSquared < 0.9, $"head R^2 at 4-7 tokens {four.RSquared}");

        string path = Path.Combine(_dir, "cat.head");
        result.File.Write(path);
        var header = HeadFile.Read(path).Header;
        Assert.Equal(buckets.Select(b => (b.From, b.To, b.Rows)), header.HeldOutByPrefixLength!.Select(b => (b.From, b.To, b.Rows)));
        Assert.Null(header.HeldOutByPrefixLength![0].PrefixRewardR2);
        Assert.Contains($"explains R^2={four.RSquared.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture)} at length 4", HeldOutAccuracy.Warning(path, header, 4));
        Assert.Contains("below the prefix reward's 1;", HeldOutAccuracy.Warning(path, header, 4));
        Assert.Equal(1.0, header.Training!["heldOut"].GetProperty("byPrefixLength")
            .EnumerateArray().Single(b => b.GetProperty("from").GetInt32() == 4).GetProperty("prefixRewardR2").GetDouble(), 12);
    }
}
