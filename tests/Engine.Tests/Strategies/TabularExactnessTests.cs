using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Engine.Tests.Models;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Strategies;

/// <summary>
/// Exactness of the strategies on the tabular story chain, whose outputs (at most 4 tokens) can be enumerated
/// with exact probabilities. Each test draws 6,000 outputs with a fixed seed and compares the empirical
/// distribution with the exact one by Pearson's chi-square at alpha = 1e-3 (a correct sampler fails for a random
/// seed with probability 1e-3; with the fixed seed the outcome is deterministic).
/// </summary>
public sealed class TabularExactnessTests : IDisposable
{
    private const int MaxTokens = 4;
    private const int Draws = 6_000;

    private readonly TabularModel _model = TabularModel.Load(TabularModelTests.ExamplePath());
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly IReward _reward;
    private readonly IReadOnlyList<TabularOutput> _outputs;
    private readonly double[] _p;
    private readonly double[] _r;

    public TabularExactnessTests()
    {
        // Happy stories are good, sad ones bad, going home is nice: ties (several outputs share a reward) included.
        _reward = new LexiconReward(new Dictionary<string, double> { ["happy"] = 1.0, ["sad"] = -1.0, ["home"] = 0.5 });
        _outputs = _model.EnumerateOutputs([], MaxTokens);
        _p = _outputs.Select(o => Math.Exp(o.LogProbability)).ToArray();
        var inputs = _outputs.Select(o => new RewardInput { Prompt = "", Text = _model.Detokenize(o.Tokens), Tokens = o.Tokens, IsFinished = o.EndsWithEos }).ToArray();
        _r = new double[inputs.Length];
        _reward.Score(inputs, _r);
    }

    public void Dispose() => _kernels.Dispose();

    [Fact]
    public async Task BestOfNMatchesTheExactBestOfNDistribution()
    {
        const int n = 3;
        var results = await OwnEngine.Run(_model, _kernels, "", reward: _reward, options: new BestOfNOptions { N = n, MaxTokens = MaxTokens, Samples = Draws, Seed = 17 });
        var exact = new BestOfN(new DiscreteOutcomes(_p, _r), n).Probabilities.ToArray();
        AssertMatches(results, exact, "best-of-3 [M5]");
        Assert.All(results, s => Assert.Equal(Math.Log(n) - (n - 1.0) / n, s.KlBound!.Value, 12));
    }

    [Theory]
    [InlineData(3, 0.5)]
    [InlineData(4, 2.0)]
    public async Task SoftBestOfNMatchesItsExactLaw(int n, double lambda)
    {
        // [M27]: the winner drawn with probability proportional to exp(r / lambda) among n i.i.d. candidates.
        var results = await OwnEngine.Run(_model, _kernels, "", reward: _reward,
            options: new SoftBestOfNOptions { N = n, Lambda = lambda, MaxTokens = MaxTokens, Samples = Draws, Seed = 19 });
        var law = new SoftBestOfN(new DiscreteOutcomes(_p, _r), n, lambda);
        Assert.Equal(1.0, law.Probabilities.Sum(), 12);
        AssertMatches(results, law.Probabilities.ToArray(), $"soft best-of-{n}, lambda {lambda}");
        // The bound of any rule that returns one of n i.i.d. candidates holds [M7], and so does the reported estimate.
        double bound = Math.Log(n) - (n - 1.0) / n;
        Assert.True(law.Kl <= bound + 1e-12, $"exact KL {law.Kl} above the bound {bound}");
        Assert.All(results, s =>
        {
            Assert.Equal(bound, s.KlBound!.Value, 12);
            Assert.Equal(KlMethod.SoftBestOfNEstimate, s.Kl.Method);
            Assert.InRange(s.Kl.Value, 0, bound + 1e-12);
        });
        // The estimate's mean bounds the exact KL from above (data processing); 6,000 draws of a value in [0, 0.64].
        Assert.True(results.Average(s => s.Kl.Value) >= law.Kl - 0.01, $"mean estimate {results.Average(s => s.Kl.Value)} below the exact KL {law.Kl}");
    }

    [Fact]
    public void SoftBestOfNsLawGoesFromBestOfNToTheBaseModel()
    {
        var outcomes = new DiscreteOutcomes(_p, _r);
        var hard = new BestOfN(outcomes, 3).Probabilities.ToArray();
        // Rewards differ by at least 0.5, so at lambda = 0.005 a lower reward weighs exp(-100) against a higher one.
        var cold = new SoftBestOfN(outcomes, 3, 0.005).Probabilities;
        var hot = new SoftBestOfN(outcomes, 3, 1e6).Probabilities;
        for (int i = 0; i < _p.Length; i++)
        {
            Assert.Equal(hard[i], cold[i], 9);
            Assert.Equal(_p[i], hot[i], 5);
        }
        Assert.Equal(new BestOfN(outcomes, 3).Kl, new SoftBestOfN(outcomes, 3, 0.005).Kl, 6);
    }

    [Fact]
    public void SoftWinnersAreDrawnByTheirWeights()
    {
        // The draw itself: over many samples of the request's RNG, each candidate wins as often as its weight says.
        double[] rewards = [0.0, 1.0, 1.0, -2.0];
        var w = Tilt.Engine.Decoding.BestOfNRun.SoftWeights(rewards, 0.7);
        Assert.Equal(1.0, w.Sum(), 12);
        Assert.Equal(w[1], w[2], 15);
        var counts = new long[4];
        for (int sample = 0; sample < 20_000; sample++) counts[Tilt.Engine.Decoding.BestOfNRun.DrawSoftWinner(rewards, 0.7, 5, 1, sample)]++;
        var (statistic, df, p) = GoodnessOfFit.ChiSquare(counts, w);
        Assert.True(p > 1e-3, $"chi-square {statistic:F1} on {df} df, p = {p:E2}");
        // A tiny lambda never overflows and picks among the tied best.
        var tiny = Tilt.Engine.Decoding.BestOfNRun.SoftWeights(rewards, 1e-300);
        Assert.Equal([0.0, 0.5, 0.5, 0.0], tiny);
    }

    [Fact]
    public async Task BlockwiseWithOneBlockIsBestOfKWithTheValueAsReward()
    {
        const int k = 3;
        var results = await OwnEngine.Run(_model, _kernels, "", reward: _reward, value: new PrefixRewardValue(_reward), options: new BlockwiseOptions { K = k, BlockSize = MaxTokens, MaxTokens = MaxTokens, Samples = Draws, Seed = 23 });
        var exact = new BestOfN(new DiscreteOutcomes(_p, _r), k).Probabilities.ToArray();
        AssertMatches(results, exact, "blockwise K=3, M >= length [M18]");
    }

    [Fact]
    public async Task TokenwiseWithTheExactSoftValueSamplesTheKlRegularizedOptimum()
    {
        const double beta = 0.5;
        var value = new TabularExactValue(_model, _reward, MaxTokens, ExactValueKind.Soft, beta);
        var results = await OwnEngine.Run(_model, _kernels, "", reward: _reward, value: value, options: new TokenwiseOptions { Candidates = 0, Beta = beta, MaxTokens = MaxTokens, Samples = Draws, Seed = 29 });
        var exact = AlignedFamily.KlRegularizedOptimum(new DiscreteOutcomes(_p, _r), beta).Probabilities.ToArray();
        AssertMatches(results, exact, "token-wise CD, soft V, full vocabulary = pi*_beta [M2]");

        // The summed per-step drift [M15] is an unbiased estimate of KL(pi*_beta || p).
        double exactKl = AlignedFamily.KlRegularizedOptimum(new DiscreteOutcomes(_p, _r), beta).KlToBase;
        var drift = results.Select(s => s.Kl.Value).ToArray();
        double mean = drift.Average(), se = Math.Sqrt(drift.Select(x => (x - mean) * (x - mean)).Sum() / (drift.Length - 1) / drift.Length);
        Assert.True(Math.Abs(mean - exactKl) < 4.5 * se + 1e-9, $"mean drift {mean} vs exact KL {exactKl} (se {se})");
    }

    [Fact]
    public async Task TokenwiseWithTheExpectedValueSamplesTheTokenwisePolicyExactly()
    {
        // [M14] with V* = E[r] [M13] is the token-wise policy pi(z|s) ∝ p(z|s) exp(V*(s,z)/beta); its output
        // distribution is the product of those per-step probabilities, computed here by enumeration. It differs
        // from pi*_beta unless the continuation's reward is deterministic (see ExactValueKind.Soft).
        const double beta = 0.5;
        var value = new TabularExactValue(_model, _reward, MaxTokens, ExactValueKind.Expected);
        var results = await OwnEngine.Run(_model, _kernels, "", reward: _reward, value: value, options: new TokenwiseOptions { Candidates = 0, Beta = beta, MaxTokens = MaxTokens, Samples = Draws, Seed = 31 });
        var exact = _outputs.Select(o => TokenwisePolicyProbability(value, o.Tokens, beta)).ToArray();
        Assert.Equal(1.0, exact.Sum(), 9);
        AssertMatches(results, exact, "token-wise CD, expected V [M14]");
        var optimum = AlignedFamily.KlRegularizedOptimum(new DiscreteOutcomes(_p, _r), beta).Probabilities.ToArray();
        Assert.True(exact.Zip(optimum).Max(x => Math.Abs(x.First - x.Second)) > 1e-3, "this reward must show the gap between [M14] with E[r] and pi*_beta");
    }

    private double TokenwisePolicyProbability(TabularExactValue value, int[] tokens, double beta)
    {
        double prob = 1;
        int state = _model.StartState;
        for (int t = 0; t < tokens.Length; t++)
        {
            double z = 0, chosen = 0;
            for (int v = 0; v < _model.Info.VocabularySize; v++)
            {
                double pv = _model.NextProbability(state, v);
                if (pv <= 0) continue;
                int[] prefix = [.. tokens[..t], v];
                double w = pv * Math.Exp(value.Value(new RewardInput
                {
                    Prompt = "", PromptTokens = [], Tokens = prefix, Text = _model.Detokenize(prefix), IsFinished = v == _model.Info.EosToken,
                }) / beta);
                z += w;
                if (v == tokens[t]) chosen = w;
            }
            prob *= chosen / z;
            state = tokens[t];
        }
        return prob;
    }

    private void AssertMatches(IReadOnlyList<AlignedSample> results, double[] exact, string what)
    {
        Assert.Equal(Draws, results.Count);
        var index = _outputs.Select((o, i) => (Key: string.Join(",", o.Tokens), i)).ToDictionary(x => x.Key, x => x.i);
        var counts = new long[_outputs.Count];
        foreach (var s in results) counts[index[string.Join(",", s.Tokens)]]++;
        var (statistic, df, pValue) = GoodnessOfFit.ChiSquare(counts, exact);
        Assert.True(pValue > 1e-3, $"{what}: chi-square {statistic:F1} on {df} df, p = {pValue:E2}");
        // And it must not be the base distribution (the test can fail).
        var (_, _, pBase) = GoodnessOfFit.ChiSquare(counts, _p);
        Assert.True(pBase < 1e-6, $"{what}: the samples also fit p (p = {pBase:E2}); the strategy did nothing");
    }
}
