using System.Diagnostics;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Strategies;

/// <summary>Deadlines cover scoring, sizes are bounded before work starts, and finite rewards of any size work (issue 13).</summary>
[Collection(SharedModelCollection.Name)]
public sealed class BoundedWorkTests(SharedModel shared) : IDisposable
{
    private const string Prompt = "Once upon a time";
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);

    public void Dispose() => _kernels.Dispose();

    /// <summary>A reward whose every call costs a fixed amount of time (a stand-in for a slow regex or a remote scorer).</summary>
    private sealed class SlowReward(TimeSpan perCandidate) : IReward
    {
        public int Calls;

        public string Description => "slow";
        public bool NeedsHiddenState => false;

        public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
        {
            for (int i = 0; i < candidates.Count; i++)
            {
                Interlocked.Increment(ref Calls);
                Thread.Sleep(perCandidate);
                rewards[i] = candidates[i].Text.Length;
            }
        }
    }

    [Fact]
    public async Task ADeadlineBoundsRewardScoringAndMarksTheOutputPartial()
    {
        // 32 candidates x 100 ms = 3.2 s of scoring; the budget is 500 ms. Decoding 8 tokens takes a few ms.
        var reward = new SlowReward(TimeSpan.FromMilliseconds(100));
        var clock = Stopwatch.StartNew();
        var results = await OwnEngine.Run(shared.Model, _kernels, Prompt, reward: reward, options:
            new BestOfNOptions { N = 32, MaxTokens = 8, Samples = 1, Seed = 3, Deadline = TimeSpan.FromMilliseconds(500) });
        clock.Stop();
        var s = Assert.Single(results);
        Assert.True(s.IsPartial);
        Assert.InRange(reward.Calls, 1, 8);
        // Bounded by the budget plus one candidate's call, with room for a slow shared machine.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }

    [Fact]
    public void ScoreWithinScoresTheFirstCandidateAndStopsAtTheDeadline()
    {
        var reward = new SlowReward(TimeSpan.FromMilliseconds(30));
        var inputs = Enumerable.Range(0, 20).Select(i => new RewardInput { Prompt = "", Text = new string('a', i), Tokens = [], IsFinished = true }).ToArray();
        var rewards = new double[20];
        var clock = Stopwatch.StartNew();
        int scored = reward.ScoreWithin(inputs, rewards, ScoringBudget.Until(TimeSpan.Zero + TimeSpan.FromMilliseconds(1), clock));
        Assert.Equal(1, scored);
        Assert.Equal(0, rewards[0]);

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => reward.ScoreWithin(inputs, rewards, ScoringBudget.Until(null, Stopwatch.StartNew(), cancelled.Token)));
        Assert.Equal(20, reward.ScoreWithin(inputs, rewards, ScoringBudget.None));
    }

    [Fact]
    public void ARegexTimeoutIsCutToTheRequestsBudget()
    {
        // Catastrophic backtracking: with its own 30 s limit one count would run for seconds.
        var reward = new RegexReward("(a+)+b", TimeSpan.FromSeconds(30));
        var inputs = new[] { "ab", new string('a', 40) }.Select(t => new RewardInput { Prompt = "", Text = t, Tokens = [], IsFinished = true }).ToArray();
        var rewards = new double[2];
        var clock = Stopwatch.StartNew();
        int scored = reward.ScoreWithin(inputs, rewards, ScoringBudget.Until(TimeSpan.FromMilliseconds(200), clock));
        Assert.Equal(1, scored);
        Assert.Equal(1, rewards[0]);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task ABlockLongerThanTheOutputReservesOnlyTheOutputsCells()
    {
        // Before: 4 candidates x 1,000,001 private cells were asked of llama.cpp (tens of GB) for 5 tokens.
        var value = new PrefixRewardValue(new LengthReward(5));
        var results = await OwnEngine.Run(shared.Model, _kernels, Prompt, reward: new LengthReward(5), value: value, options:
            new BlockwiseOptions { K = 4, BlockSize = 1_000_000, MaxTokens = 5, Samples = 1, Seed = 2 });
        Assert.InRange(Assert.Single(results).Tokens.Count, 1, 5);
    }

    [Theory]
    [InlineData(1e300)]
    [InlineData(-double.MaxValue)]
    public async Task FiniteRewardsBeyondTheFloatRangeTiltTokenwiseCd(double weight)
    {
        // weight * length: finite doubles far outside float, as values of the prefix [M13].
        var reward = new WeightedReward([new WeightedTerm(weight, new LengthReward(20))]);
        var results = await OwnEngine.Run(shared.Model, _kernels, Prompt, reward: reward, value: new PrefixRewardValue(reward), options:
            new TokenwiseOptions { Candidates = 8, Beta = 1, MaxTokens = 4, Samples = 1, Seed = 4 });
        var s = Assert.Single(results);
        Assert.Equal(4, s.Tokens.Count);
        Assert.True(double.IsFinite(s.Reward));
    }

    [Fact]
    public void ShiftedValuesKeepTheirDifferencesAndTheMaxIsZero()
    {
        var dest = new float[4];
        KernelValues.ShiftToFloat([1e300, 1e300 - 1e290, -double.MaxValue, 1e300], dest);
        Assert.Equal([0f, float.NegativeInfinity, float.NegativeInfinity, 0f], dest); // 1e290 below the best: never drawn
        KernelValues.ShiftToFloat([2.5, 1.0, -0.5, 2.0], dest);
        Assert.Equal([0f, -1.5f, -3f, -0.5f], dest);
    }

    [Fact]
    public void AModelLargerThanTheDiskIsRefusedBeforeWriting()
    {
        string dir = Directory.CreateTempSubdirectory("tilt-huge-").FullName;
        try
        {
            string path = Path.Combine(dir, "huge.gguf");
            var shape = new ModelShape("huge", Dim: 1_000_000, Layers: 500, Heads: 1000, KvHeads: 1000, FeedForward: 1000);
            var e = Assert.Throws<TiltException>(() => SyntheticModel.Write(path, shape, SentencePieceVocabulary.Synthesize(300), GgufTensorType.F16));
            Assert.StartsWith($"{path}: the model needs", e.Message);
            Assert.Contains("GiB free", e.Message);
            Assert.Empty(Directory.GetFileSystemEntries(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
