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
                double w = pv * Math.Exp(value.Value(new ValueInput
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
