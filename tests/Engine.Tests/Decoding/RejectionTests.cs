using Tilt.Engine.Decoding;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Engine.Tests.Models;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Xunit.Abstractions;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>
/// Early rejection on the tabular story chain, whose outputs (at most 4 tokens) can be enumerated: its exact output law is
/// computed by running the algorithm's rule on every N-tuple of complete outputs (probability prod p(y_i)), and the sampler
/// must match it (Pearson chi-square at alpha = 1e-3 over 6,000 draws: a correct sampler fails with probability 1e-3 for a
/// random seed; with the fixed seed the outcome is deterministic). Alpha = 0 must be best-of-N [M5].
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class RejectionTests(SharedModel shared, ITestOutputHelper output) : IDisposable
{
    private const int MaxTokens = 4;
    private const int Draws = 6_000;

    private readonly TabularModel _model = TabularModel.Load(TabularModelTests.ExamplePath());
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly IReward _reward = new LexiconReward(new Dictionary<string, double> { ["happy"] = 1.0, ["sad"] = -1.0, ["home"] = 0.5 });

    public void Dispose()
    {
        _kernels.Dispose();
        _model.Dispose();
    }

    private async Task<IReadOnlyList<AlignedSample>> Sample(RejectionOptions options)
    {
        using var engine = new DecodingEngine(_model, _kernels, new EngineOptions { MaxSequences = options.N, MaxSequenceLength = 16 });
        return await engine.RunAsync(new DecodingRequest { Prompt = "", Options = options, Reward = _reward });
    }

    [Fact]
    public async Task AlphaZeroIsBestOfN()
    {
        const int n = 3;
        var outputs = _model.EnumerateOutputs([], MaxTokens);
        var p = outputs.Select(o => Math.Exp(o.LogProbability)).ToArray();
        var r = Rewards(outputs);
        var results = await Sample(new RejectionOptions { N = n, Alpha = 0, Every = 1, MaxTokens = MaxTokens, Samples = Draws, Seed = 41 });
        AssertMatches(outputs, results, new BestOfN(new DiscreteOutcomes(p, r), n).Probabilities.ToArray(), p, "rejection alpha = 0 vs best-of-3 [M5]");
    }

    [Theory]
    // Lexicon words first appear at the 4th token of this chain, so decisions at 4 tokens see different values; earlier
    // ones see ties (broken by index: a uniformly random subset survives).
    [InlineData(3, 0.5, 4)]
    [InlineData(4, 0.5, 4)]
    [InlineData(4, 0.5, 2)]
    [InlineData(3, 0.7, 4)]
    public async Task TheSamplerMatchesTheEnumeratedLawAndItsKlRespectsTheBestOfNBound(int n, double alpha, int every)
    {
        const int maxTokens = 6;
        var outputs = _model.EnumerateOutputs([], maxTokens);
        var p = outputs.Select(o => Math.Exp(o.LogProbability)).ToArray();
        var q = ExactLaw(outputs, p, n, alpha, every, maxTokens);
        Assert.Equal(1.0, q.Sum(), 9);
        var results = await Sample(new RejectionOptions { N = n, Alpha = alpha, Every = every, MaxTokens = maxTokens, Samples = Draws, Seed = 43 });
        AssertMatches(outputs, results, q, p, $"rejection N={n} alpha={alpha} every={every}");

        // KL of the exact law against the best-of-N bound log N - (N-1)/N [M7] (docs/rejection.md derives why it holds).
        double kl = 0, klHat = 0;
        for (int i = 0; i < q.Length; i++)
        {
            if (q[i] == 0) continue;
            kl += q[i] * Math.Log(q[i] / p[i]);
            klHat += q[i] * KlEstimators.KlHat(p[i], n);
        }
        double bound = Math.Log(n) - (n - 1.0) / n;
        var bon = new BestOfN(new DiscreteOutcomes(p, Rewards(outputs)), n);
        output.WriteLine($"N={n} alpha={alpha} every={every}: exact KL {kl:F4}, E[KLhat(p(winner))] {klHat:F4}, best-of-N KL {bon.Kl:F4}, bound {bound:F4}");
        Assert.True(kl <= bound + 1e-12, $"exact KL {kl} above the bound {bound}");
        Assert.True(kl > 0.01, "rejection must move away from p");
        // KLhat with eps = p(winner) is conservative here: its mean over the exact law is at least the exact KL.
        Assert.True(klHat >= kl - 1e-12, $"E[KLhat] {klHat} below the exact KL {kl}");
    }

    [Fact]
    public async Task OnStoriesAlphaZeroReturnsExactlyTheBestOfNOutputs()
    {
        var reward = new LexiconReward(new Dictionary<string, double> { ["happy"] = 1, ["fun"] = 1, ["sad"] = -1, ["friends"] = 1 });
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 16, MaxSequenceLength = 64 });
        var bon = await engine.RunAsync(new DecodingRequest { Prompt = "Once upon a time", Options = new BestOfNOptions { N = 8, MaxTokens = 32, Seed = 5, Samples = 3 }, Reward = reward });
        var rej = await engine.RunAsync(new DecodingRequest { Prompt = "Once upon a time", Options = new RejectionOptions { N = 8, Alpha = 0, Every = 8, MaxTokens = 32, Seed = 5, Samples = 3 }, Reward = reward });
        Assert.Equal(bon.Select(s => s.Text), rej.Select(s => s.Text));
        Assert.Equal(bon.Select(s => s.Reward), rej.Select(s => s.Reward));

        // With rejection it decodes fewer tokens and reports its decisions.
        var cut = (await engine.RunAsync(new DecodingRequest { Prompt = "Once upon a time", Options = new RejectionOptions { N = 8, Alpha = 0.5, Every = 8, MaxTokens = 32, Seed = 5 }, Reward = reward })).Single();
        Assert.True(cut.TokensEvaluated < bon[0].TokensEvaluated, $"{cut.TokensEvaluated} tokens vs {bon[0].TokensEvaluated} for best-of-8");
        Assert.Equal([4, 2, 1], cut.SurvivorsPerDecision!);
        Assert.True(cut.TokensSavedEstimate > 0);
    }

    /// <summary>
    /// A reward that reads only the first <see cref="Length"/> generated tokens (a 64-bit FNV-1a hash of them as a number in
    /// [0, 1): distinct prefixes practically never tie), so its value on any prefix of at least that length is the final
    /// reward: a scorer whose prefix rank equals the final rank from t = Length on.
    /// </summary>
    private sealed class FirstTokensReward : IReward
    {
        public const int Length = 8;
        public string Description => "first-tokens";
        public bool NeedsHiddenState => false;

        public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
        {
            for (int i = 0; i < candidates.Count; i++)
            {
                ulong hash = 14695981039346656037UL;
                foreach (int token in candidates[i].Tokens.Take(Length)) hash = (hash ^ (uint)token) * 1099511628211UL;
                rewards[i] = (hash >> 11) * (1.0 / (1UL << 53));
            }
        }
    }

    [Fact]
    public async Task BudgetModeWithAPrefixScorerThatRanksLikeTheFinalRewardReturnsBestOfNsOutputs()
    {
        var reward = new FirstTokensReward();
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 16, MaxSequenceLength = 64 });
        async Task<IReadOnlyList<AlignedSample>> Run(AlignOptions options) =>
            await engine.RunAsync(new DecodingRequest { Prompt = "Once upon a time", Options = options, Reward = reward });
        var bon = await Run(new BestOfNOptions { N = 8, MaxTokens = 32, Seed = 5, Samples = 6 });
        var budget = await Run(new RejectionOptions { N = 8, Alpha = 0.75, DecideAt = FirstTokensReward.Length, MaxTokens = 32, Seed = 5, Samples = 6 });
        Assert.Equal(bon.Select(s => s.Text), budget.Select(s => s.Text));
        Assert.Equal(bon.Select(s => s.Reward), budget.Select(s => s.Reward));
        // One decision, at t = 8, keeping ceil((1 - 0.75) 8) = 2 (no candidate ends within 8 tokens here), so fewer tokens.
        Assert.All(budget, s => Assert.Equal([2], s.SurvivorsPerDecision!));
        Assert.All(budget.Zip(bon), p => Assert.True(p.First.TokensEvaluated < p.Second.TokensEvaluated,
            $"budget mode decoded {p.First.TokensEvaluated} tokens, best-of-8 {p.Second.TokensEvaluated}"));

        // The same decision made after 1 token (every candidate starts with the same token: all tied, a fixed pair survives) loses
        // best-of-n's winner on some of these outputs: the check above can fail.
        var early = await Run(new RejectionOptions { N = 8, Alpha = 0.75, DecideAt = 1, MaxTokens = 32, Seed = 5, Samples = 6 });
        Assert.Contains(early.Zip(bon), p => p.First.Reward < p.Second.Reward);
        Assert.All(early, s => Assert.Single(s.SurvivorsPerDecision!));
    }

    [Fact]
    public async Task BudgetModeDecidesOnceAtItsLengthOnly()
    {
        // Every = 1 would decide at every token; with DecideAt = 3 only one decision is made (survivors 4 of 8 at alpha 0.5).
        var reward = new LexiconReward(new Dictionary<string, double> { ["happy"] = 1, ["sad"] = -1 });
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 8, MaxSequenceLength = 64 });
        var outputs = await engine.RunAsync(new DecodingRequest
        {
            Prompt = "Once upon a time", Options = new RejectionOptions { N = 8, Alpha = 0.5, Every = 1, DecideAt = 3, MaxTokens = 24, Seed = 2, Samples = 3, ReturnCandidates = true },
            Reward = reward,
        });
        Assert.All(outputs, s =>
        {
            Assert.Equal([4], s.SurvivorsPerDecision!);
            Assert.All(s.Candidates.Where(c => c.Rejected), c => Assert.Equal(3, c.Tokens.Count));
        });
    }

    [Fact]
    public async Task ADecisionLengthNotShorterThanTheOutputIsRefused()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Sample(new RejectionOptions { N = 2, DecideAt = 4, MaxTokens = 4 }));
        Assert.Contains("decision length (4 tokens) must be shorter than max tokens (4)", e.Message);
        Assert.Contains("at least 1 token, got 0", Assert.Throws<ArgumentOutOfRangeException>(() => new RejectionOptions { DecideAt = 0 }).Message);
    }

    [Fact]
    public async Task RejectedCandidatesFreeTheirSequencesForOtherRequests()
    {
        // The engine holds exactly the rejection request's 4 sequences: the second request can only start once the first
        // decision (after 2 tokens) has given 2 of them back, long before the first request ends.
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 4, MaxSequenceLength = 300 });
        var reward = new LengthReward(1000);
        var first = engine.RunAsync(new DecodingRequest { Prompt = "Once upon a time", Options = new RejectionOptions { N = 4, Alpha = 0.5, Every = 2, MaxTokens = 250, Seed = 1 }, Reward = reward });
        var second = (await engine.RunAsync(new DecodingRequest { Prompt = "Once upon a time", Options = new Tilt.Engine.Requests.GenerationOptions { Samples = 2, MaxTokens = 4 } })).ToArray();
        Assert.False(first.IsCompleted, "the second request should finish while the rejection request still runs");
        Assert.All(second, s => Assert.InRange(s.QueuedIterations, 1, 6));
        var done = (await first).Single();
        Assert.Equal(2, done.SurvivorsPerDecision![0]);
    }

    [Fact]
    public async Task ARequestWaitingForTheWholeEngineIsNotStarvedByRejectionsLaterSamples()
    {
        // The rejection request gives sequences back at its decisions; its next output needs all 4 again while another
        // request waits for all 4: it goes back to the queue (behind the waiter) instead of holding the rest forever.
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 4, MaxSequenceLength = 64 });
        var reward = new LengthReward(10);
        var rejection = engine.RunAsync(new DecodingRequest { Prompt = "Once upon a time", Options = new RejectionOptions { N = 4, Alpha = 0.5, Every = 2, MaxTokens = 24, Seed = 1, Samples = 3 }, Reward = reward });
        var wide = engine.RunAsync(new DecodingRequest { Prompt = "Once upon a time", Options = new Tilt.Engine.Requests.GenerationOptions { Samples = 4, MaxTokens = 8 } });
        var both = Task.WhenAll(rejection, wide);
        Assert.Same(both, await Task.WhenAny(both, Task.Delay(TimeSpan.FromMinutes(2))));
        Assert.Equal(3, (await rejection).Count);
        Assert.Equal(4, (await wide).Count);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void AlphaOutsideZeroOneIsRefused(double alpha)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RejectionOptions { Alpha = alpha });
        Assert.Contains("alpha must be in [0, 1)", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(257)]
    public void NOutOfRangeIsRefused(int n) =>
        Assert.Contains("n must be between 1 and 256", Assert.Throws<ArgumentOutOfRangeException>(() => new RejectionOptions { N = n }).Message);

    [Fact]
    public async Task AScheduleLongerThanTheOutputIsRefused()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Sample(new RejectionOptions { N = 2, Every = 4, MaxTokens = 4 }));
        Assert.Contains("decision interval (4 tokens) must be shorter than max tokens (4)", e.Message);
    }

    private double[] Rewards(IReadOnlyList<TabularOutput> outputs)
    {
        var inputs = outputs.Select(o => new RewardInput { Prompt = "", Text = _model.Detokenize(o.Tokens), Tokens = o.Tokens, IsFinished = o.EndsWithEos }).ToArray();
        var r = new double[inputs.Length];
        _reward.Score(inputs, r);
        return r;
    }

    /// <summary>
    /// The exact output law: for every N-tuple of complete outputs, the rule the engine runs (decisions at M, 2M, ... tokens
    /// over the candidates still unfinished, i.e. longer than t; the floor(alpha U) lowest prefix values stopped, ties by
    /// higher index first; the winner the survivor of highest reward, ties uniform).
    /// </summary>
    private double[] ExactLaw(IReadOnlyList<TabularOutput> outputs, double[] p, int n, double alpha, int every, int maxTokens)
    {
        var value = new PrefixRewardValue(_reward);
        var final = Rewards(outputs);
        int m = outputs.Count;
        var q = new double[m];
        var tuple = new int[n];
        var prefixValue = new Dictionary<(int, int), double>();
        double PrefixValue(int output, int t)
        {
            if (prefixValue.TryGetValue((output, t), out double v)) return v;
            int[] prefix = outputs[output].Tokens[..t];
            var values = new double[1];
            value.Evaluate([new RewardInput { Prompt = "", PromptTokens = [], Tokens = prefix, Text = _model.Detokenize(prefix), IsFinished = false }], [], 1, values);
            return prefixValue[(output, t)] = values[0];
        }
        while (true)
        {
            double weight = 1;
            for (int i = 0; i < n; i++) weight *= p[tuple[i]];
            if (weight > 0)
            {
                var alive = Enumerable.Repeat(true, n).ToArray();
                for (int t = every; t < maxTokens; t += every)
                {
                    var unfinished = Enumerable.Range(0, n).Where(i => alive[i] && outputs[tuple[i]].Tokens.Length > t).ToArray();
                    int reject = (int)Math.Floor(alpha * unfinished.Length);
                    if (unfinished.Length < 2 || reject == 0) continue;
                    foreach (int i in unfinished.OrderBy(i => PrefixValue(tuple[i], t)).ThenByDescending(i => i).Take(reject)) alive[i] = false;
                }
                double best = Enumerable.Range(0, n).Where(i => alive[i]).Max(i => final[tuple[i]]);
                var winners = Enumerable.Range(0, n).Where(i => alive[i] && final[tuple[i]] == best).ToArray();
                foreach (int i in winners) q[tuple[i]] += weight / winners.Length;
            }
            int k = 0;
            while (k < n && ++tuple[k] == m) tuple[k++] = 0;
            if (k == n) break;
        }
        return q;
    }

    private static void AssertMatches(IReadOnlyList<TabularOutput> outputs, IReadOnlyList<AlignedSample> results, double[] exact, double[] p, string what)
    {
        Assert.Equal(Draws, results.Count);
        var index = outputs.Select((o, i) => (Key: string.Join(",", o.Tokens), i)).ToDictionary(x => x.Key, x => x.i);
        var counts = new long[outputs.Count];
        foreach (var s in results) counts[index[string.Join(",", s.Tokens)]]++;
        var (statistic, df, pValue) = GoodnessOfFit.ChiSquare(counts, exact);
        Assert.True(pValue > 1e-3, $"{what}: chi-square {statistic:F1} on {df} df, p = {pValue:E2}");
        var (_, _, pBase) = GoodnessOfFit.ChiSquare(counts, p);
        Assert.True(pBase < 1e-6, $"{what}: the samples also fit p (p = {pBase:E2}); the strategy did nothing");
    }
}
