using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Strategies;

[Collection(SharedModelCollection.Name)]
public sealed class GgufStrategyTests(SharedModel shared) : IDisposable
{
    private const string Prompt = "Once upon a time";
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly IReward _reward = new LexiconReward(new Dictionary<string, double>
    {
        ["happy"] = 1, ["fun"] = 1, ["smiled"] = 1, ["love"] = 1, ["loved"] = 1, ["friends"] = 1, ["good"] = 1,
        ["sad"] = -1, ["cried"] = -1, ["scared"] = -1, ["angry"] = -1, ["bad"] = -1,
    });

    public void Dispose() => _kernels.Dispose();

    private async Task<double> BaseMeanReward(int samples, int maxTokens)
    {
        var result = await OwnEngine.Run(shared.Model, _kernels, Prompt, new GenerationOptions { Samples = samples, MaxTokens = maxTokens, Seed = 100 });
        var inputs = result.Select(s => new RewardInput { Prompt = Prompt, Text = s.Text, Tokens = s.Tokens, IsFinished = s.Finish == AlignFinish.Eos }).ToArray();
        var r = new double[inputs.Length];
        _reward.Score(inputs, r);
        return r.Average();
    }

    [Fact]
    public async Task EveryStrategyRaisesTheLexiconRewardOverBaseSamples()
    {
        // Same seed budget: 8 outputs of 48 tokens each; base samples get the same count.
        double baseline = await BaseMeanReward(8, 48);
        var value = new PrefixRewardValue(_reward);
        var bon = await OwnEngine.Run(shared.Model, _kernels, Prompt, new BestOfNOptions { N = 8, MaxTokens = 48, Samples = 8, Seed = 1 }, reward: _reward);
        var tokenwise = await OwnEngine.Run(shared.Model, _kernels, Prompt, reward: _reward, value: value, options: new TokenwiseOptions { Candidates = 16, Beta = 0.1, MaxTokens = 48, Samples = 8, Seed = 1 });
        var blockwise = await OwnEngine.Run(shared.Model, _kernels, Prompt, reward: _reward, value: value, options: new BlockwiseOptions { K = 8, BlockSize = 8, MaxTokens = 48, Samples = 8, Seed = 1 });
        foreach (var (name, results) in new[] { ("best-of-n", bon), ("token-wise", tokenwise), ("blockwise", blockwise) })
        {
            Assert.Equal(8, results.Count);
            double mean = results.Average(s => s.Reward);
            Assert.True(mean > baseline + 0.5, $"{name}: mean reward {mean:F2} vs base {baseline:F2}");
            Assert.All(results, s => Assert.True(s.Kl.Value >= 0 && double.IsFinite(s.Kl.Value), $"{name}: KL {s.Kl.Value}"));
        }
        Assert.All(bon, s => Assert.Equal(Math.Log(8) - 7.0 / 8, s.KlBound!.Value, 12));
        Assert.All(blockwise, s => Assert.True(s.Kl.Value <= s.KlBound!.Value + 1e-9));
    }

    [Fact]
    public async Task ReportedRewardAndLogProbDescribeTheReturnedText()
    {
        var results = await OwnEngine.Run(shared.Model, _kernels, Prompt, reward: _reward, value: new PrefixRewardValue(_reward), options: new BlockwiseOptions { K = 4, BlockSize = 4, MaxTokens = 24, Seed = 3 }, kv: KvCacheType.F32);
        var s = Assert.Single(results);
        Assert.Equal(shared.Model.Detokenize(s.Tokens.ToArray()), s.Text);
        var r = new double[1];
        _reward.Score([new RewardInput { Prompt = Prompt, Text = s.Text, Tokens = s.Tokens, IsFinished = s.Finish == AlignFinish.Eos }], r);
        Assert.Equal(r[0], s.Reward);
        Assert.Equal(ScoreLogProb(s.Tokens), s.LogProb, 3);
    }

    private double ScoreLogProb(IReadOnlyList<int> tokens)
    {
        using var session = shared.Model.CreateSession(new SessionOptions { MaxSequences = 1, MaxSequenceLength = 64, KvCacheType = KvCacheType.F32 });
        session.Prefill(0, shared.Model.Tokenize(Prompt));
        double sum = 0;
        foreach (int t in tokens)
        {
            var row = session.Logits;
            double max = double.NegativeInfinity;
            foreach (float v in row) max = Math.Max(max, v);
            double z = 0;
            foreach (float v in row) z += Math.Exp(v - max);
            sum += row[t] - max - Math.Log(z);
            if (!shared.Model.Info.IsStop(t)) session.Step([0], [t]);
        }
        return sum;
    }

    [Theory]
    [InlineData("bon")]
    [InlineData("tokenwise")]
    [InlineData("blockwise")]
    public async Task CancellationStopsWithinOneStep(string strategy)
    {
        using var cts = new CancellationTokenSource();
        int acceptedAfterCancel = 0;
        bool cancelled = false;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var e in Stream(strategy, cts.Token))
            {
                if (cancelled && e is TextAccepted or StepCompleted) acceptedAfterCancel++;
                if (!cancelled && e is TextAccepted or StepCompleted)
                {
                    cts.Cancel();
                    cancelled = true;
                }
            }
        });
        Assert.True(cancelled);
        Assert.True(acceptedAfterCancel <= 1, $"{acceptedAfterCancel} steps after cancellation");
    }

    private IAsyncEnumerable<AlignEvent> Stream(string strategy, CancellationToken token, TimeSpan? deadline = null, int maxTokens = 200) => strategy switch
    {
        "bon" => OwnEngine.Stream(shared.Model, _kernels, Prompt, new BestOfNOptions { N = 4, MaxTokens = maxTokens, Deadline = deadline }, reward: _reward, cancellationToken: token),
        "tokenwise" => OwnEngine.Stream(shared.Model, _kernels, Prompt, reward: _reward, value: new PrefixRewardValue(_reward), options: new TokenwiseOptions { MaxTokens = maxTokens, Deadline = deadline }, cancellationToken: token),
        _ => OwnEngine.Stream(shared.Model, _kernels, Prompt, reward: _reward, value: new PrefixRewardValue(_reward), options: new BlockwiseOptions { K = 4, BlockSize = 4, MaxTokens = maxTokens, Deadline = deadline }, cancellationToken: token),
    };

    [Theory]
    [InlineData("bon")]
    [InlineData("tokenwise")]
    [InlineData("blockwise")]
    public async Task ADeadlineReturnsAPartialResultMarkedAsSuch(string strategy)
    {
        // 400 tokens take far longer than 10 ms with every strategy, and no story ends within the ~30 tokens that fit in
        // 10 ms: the deadline cuts the output in progress.
        var results = new List<AlignedSample>();
        await foreach (var e in Stream(strategy, CancellationToken.None, TimeSpan.FromMilliseconds(10), maxTokens: 400))
            if (e is SampleCompleted c) results.Add(c.Result);
        var s = Assert.Single(results);
        Assert.True(s.IsPartial);
        Assert.Equal(AlignFinish.Deadline, s.Finish);
        Assert.True(s.Tokens.Count < 400);
    }

    [Theory]
    [InlineData(KvLayout.PerSequence)]
    [InlineData(KvLayout.Shared)]
    public void MovingAWinnersCacheLeavesEverySequenceEqualToAnUnforkedDecode(KvLayout layout)
    {
        var options = new SessionOptions { MaxSequences = 4, MaxSequenceLength = 48, KvLayout = layout, SharedCellsPerSequence = 8, KvCacheType = KvCacheType.F32 };
        int[] prompt = shared.Model.Tokenize(Prompt);
        using var session = shared.Model.CreateSession(options);
        session.Prefill(0, prompt);
        for (int i = 1; i < 4; i++) session.CopySequence(0, i);
        int[][] blocks = [[100, 101, 102], [200, 201, 202], [300, 301, 302], [400, 401, 402]];
        for (int t = 0; t < 3; t++) session.Step([0, 1, 2, 3], blocks.Select(b => b[t]).ToArray());
        // Block 2 wins: it becomes every sequence's prefix, then all decode the same next token.
        session.CopySequence(2, 0);
        for (int i = 1; i < 4; i++) if (i != 2) session.CopySequence(2, i);
        session.Step([0, 1, 2, 3], [42, 42, 42, 42]);
        var batched = session.Logits.ToArray();

        using var alone = shared.Model.CreateSession(new SessionOptions { MaxSequences = 1, MaxSequenceLength = 48, KvCacheType = KvCacheType.F32 });
        alone.Prefill(0, [.. prompt, .. blocks[2], 42]);
        var reference = alone.Logits.ToArray();
        for (int i = 0; i < 4; i++)
        {
            double max = 0;
            for (int v = 0; v < reference.Length; v++) max = Math.Max(max, Math.Abs(batched[i * reference.Length + v] - reference[v]));
            Assert.True(max < 1e-4, $"sequence {i}: max |logit difference| {max}");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(257)]
    public void BestOfNRejectsNOutOfRange(int n) =>
        Assert.Contains("n must be between 1 and 256", Assert.Throws<ArgumentOutOfRangeException>(() => new BestOfNOptions { N = n }).Message);

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(1e-300)] // positive, but 0 as the float the kernels divide by
    public void BetaMustBeFiniteAndPositive(double beta)
    {
        Assert.Contains("beta must be", Assert.Throws<ArgumentOutOfRangeException>(() => new TokenwiseOptions { Beta = beta }).Message);
        Assert.Contains("beta must be", Assert.Throws<ArgumentOutOfRangeException>(() => new BlockwiseOptions { Beta = beta }).Message);
    }

    [Fact]
    public void BlockwiseRejectsKOutOfRange() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new BlockwiseOptions { K = 300 });

    [Fact]
    public void AHeadTrainedOnAnotherModelIsRefused()
    {
        string path = Path.Combine(Path.GetTempPath(), $"tilt-head-{Guid.NewGuid():N}.head");
        try
        {
            var header = new HeadHeader { Kind = HeadKind.Linear, Role = HeadRole.Value, ModelFingerprint = "sha256:0000", HiddenSize = 64 };
            new HeadFile(header, new float[65]).Write(path);
            var e = Assert.Throws<TiltException>(() => HeadValue.Load(path, shared.Model.Info));
            Assert.Contains("trained on model sha256:0000", e.Message);

            var wrongSize = header with { ModelFingerprint = shared.Model.Info.Fingerprint, HiddenSize = 32 };
            new HeadFile(wrongSize, new float[33]).Write(path);
            Assert.Contains("size 32", Assert.Throws<TiltException>(() => HeadValue.Load(path, shared.Model.Info)).Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
