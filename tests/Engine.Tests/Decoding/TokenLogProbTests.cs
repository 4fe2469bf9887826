using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Tests.Models;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>
/// Per-token log-probabilities: every strategy reports one entry per output token whose values sum to the sequence
/// log p it already reports, the alternatives come from the same row, and asking for them changes no token.
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class TokenLogProbTests(SharedModel shared) : IDisposable
{
    private const string Prompt = "Once upon a time";
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly IReward _reward = new LexiconReward(new Dictionary<string, double> { ["happy"] = 1, ["fun"] = 1, ["sad"] = -1 });

    public void Dispose() => _kernels.Dispose();

    private DecodingEngine Engine(ILanguageModel model) => new(model, _kernels,
        new EngineOptions { MaxSequences = 16, MaxSequenceLength = 96, KvCacheType = KvCacheType.F32, PromptCacheEntries = 0 });

    [Fact]
    public async Task On_the_tabular_model_every_value_is_the_exact_log_probability()
    {
        using var model = TabularModel.Load(TabularModelTests.ExamplePath());
        using var engine = Engine(model);
        int vocab = model.Info.VocabularySize;
        foreach (DecodingOptions options in new DecodingOptions[]
        {
            new GenerationOptions { Samples = 8, MaxTokens = 6, Seed = 1, TopLogprobs = Math.Min(20, vocab) },
            new BlockwiseOptions { K = 3, BlockSize = 2, MaxTokens = 6, Seed = 2, TopLogprobs = 3 },
            new TokenwiseOptions { Candidates = 3, MaxTokens = 6, Seed = 3, TopLogprobs = 2 },
        })
        {
            var outputs = await engine.RunAsync(new DecodingRequest { Prompt = "", Options = options, Reward = _reward });
            foreach (var o in outputs)
            {
                var lps = o.TokenLogProbs!;
                Assert.Equal(o.Tokens.Count, lps.Count);
                for (int t = 0; t < lps.Count; t++)
                {
                    int[] prefix = o.Tokens.Take(t).ToArray();
                    Assert.Equal(o.Tokens[t], lps[t].Token);
                    // The tabular session hands the engine float32 logits (log p rounded to float), so a value matches the
                    // exact one to float rounding: the token's (float kernel) to 1e-6, the alternatives (float64 pass over
                    // the float row) to 1e-7.
                    Assert.Equal(model.SequenceLogProbability(prefix, [o.Tokens[t]]), lps[t].LogProb, 1e-6);
                    Assert.Equal(Math.Min(options.TopLogprobs, lps[t].Top.Count), lps[t].Top.Count);
                    var exact = Enumerable.Range(0, vocab).Select(a => (Id: a, Lp: model.SequenceLogProbability(prefix, [a])))
                        .Where(e => !double.IsNegativeInfinity(e.Lp)).OrderByDescending(e => e.Lp).ThenBy(e => e.Id).ToList();
                    Assert.Equal(Math.Min(options.TopLogprobs, exact.Count), lps[t].Top.Count);
                    for (int i = 0; i < lps[t].Top.Count; i++)
                    {
                        Assert.Equal(exact[i].Lp, lps[t].Top[i].LogProb, 1e-7);
                        Assert.Equal(exact[i].Lp, model.SequenceLogProbability(prefix, [lps[t].Top[i].Token]), 1e-7);
                    }
                }
                Assert.Equal(o.LogProb, lps.Sum(l => l.LogProb), 1e-9);
            }
        }
    }

    public static TheoryData<string> Strategies() => new() { "generate", "bon", "rejection", "blockwise", "tokenwise" };

    private DecodingRequest Request(string strategy, bool logprobs, int top) => new()
    {
        Prompt = Prompt,
        Reward = _reward,
        Options = (strategy switch
        {
            "generate" => (DecodingOptions)new GenerationOptions { Samples = 3, Sampling = new SamplingParameters(0.8f) },
            "bon" => new BestOfNOptions { N = 4 },
            "rejection" => new RejectionOptions { N = 4, Every = 4 },
            "blockwise" => new BlockwiseOptions { K = 3, BlockSize = 4 },
            _ => new TokenwiseOptions { Candidates = 4 },
        }) with { MaxTokens = 24, Seed = 7, Logprobs = logprobs, TopLogprobs = top },
    };

    [Theory]
    [MemberData(nameof(Strategies))]
    public async Task On_stories260K_the_values_sum_to_the_sequence_logprob_and_change_no_token(string strategy)
    {
        using var engine = Engine(shared.Model);
        var plain = await engine.RunAsync(Request(strategy, false, 0));
        Assert.All(plain, o => Assert.Null(o.TokenLogProbs));
        var withTop = await engine.RunAsync(Request(strategy, true, 5));
        var onlyValues = await engine.RunAsync(Request(strategy, true, 0));
        for (int i = 0; i < plain.Count; i++)
        {
            Assert.Equal(plain[i].Tokens, withTop[i].Tokens);
            Assert.Equal(plain[i].Tokens, onlyValues[i].Tokens);
            var lps = withTop[i].TokenLogProbs!;
            Assert.Equal(withTop[i].Tokens, lps.Select(l => l.Token));
            Assert.Equal(withTop[i].LogProb, lps.Sum(l => l.LogProb), 1e-9);
            Assert.All(onlyValues[i].TokenLogProbs!, l => Assert.Empty(l.Top));
            foreach (var l in lps)
            {
                Assert.Equal(5, l.Top.Count);
                for (int j = 1; j < l.Top.Count; j++) Assert.True(l.Top[j - 1].LogProb >= l.Top[j].LogProb);
                Assert.True(l.Top.Sum(a => Math.Exp(a.LogProb)) <= 1 + 1e-9);
                // The token's own value (float kernel) against the float64 pass of the same row.
                if (l.Top.FirstOrDefault(a => a.Token == l.Token) is { Token: var id } hit && id == l.Token)
                    Assert.Equal(hit.LogProb, l.LogProb, 2e-5);
                else Assert.True(l.LogProb <= l.Top[^1].LogProb + 2e-5);
            }
            if (strategy == "generate") Assert.All(lps, l => Assert.False(double.IsNaN(l.SamplerLogProb))); // T = 0.8: q differs from p
            if (strategy == "tokenwise") Assert.Contains(lps, l => !double.IsNaN(l.SamplerLogProb));        // the tilted policy
        }
    }

    [Fact]
    public async Task Streamed_events_carry_the_values_of_their_tokens()
    {
        using var engine = Engine(shared.Model);
        foreach (string strategy in new[] { "generate", "blockwise", "tokenwise", "bon" })
        {
            var streamed = new Dictionary<int, List<TokenLogProb>>();
            var results = new List<AlignedSample>();
            await foreach (var e in engine.StreamAsync(Request(strategy, false, 3)))
            {
                if (e is TextAccepted { TokenLogProbs: { } t } a) (streamed.TryGetValue(a.Sample, out var l) ? l : streamed[a.Sample] = []).AddRange(t);
                if (e is SampleCompleted c) results.Add(c.Result);
            }
            foreach (var r in results) Assert.Equal(r.TokenLogProbs!, streamed[r.Index]);
        }
    }
}
