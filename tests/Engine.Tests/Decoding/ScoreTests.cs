using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Tests.Models;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>Scoring a given text by teacher forcing (<see cref="DecodingEngine.ScoreAsync"/>), batched with generation.</summary>
[Collection(SharedModelCollection.Name)]
public sealed class ScoreTests(SharedModel shared) : IDisposable
{
    private const string Prompt = "Once upon a time";
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);

    public void Dispose() => _kernels.Dispose();

    private DecodingEngine Engine(ILanguageModel model) => new(model, _kernels,
        new EngineOptions { MaxSequences = 8, MaxSequenceLength = 128, KvCacheType = KvCacheType.F32, PromptCacheEntries = 0 });

    [Fact]
    public async Task On_the_tabular_model_every_value_is_the_exact_log_probability()
    {
        using var model = TabularModel.Load(TabularModelTests.ExamplePath());
        using var engine = Engine(model);
        var generated = await engine.RunAsync(new DecodingRequest { Prompt = "", Options = new GenerationOptions { Samples = 6, MaxTokens = 5, Seed = 2 } });
        foreach (var g in generated)
        {
            var score = await engine.ScoreAsync("", g.Text, topLogprobs: 3);
            int[] prompt = [.. score.PromptTokens];
            Assert.Equal(score.Tokens.Count, score.TokenLogProbs.Count);
            bool greedy = true;
            for (int t = 0; t < score.Tokens.Count; t++)
            {
                int[] prefix = [.. prompt, .. score.Tokens.Take(t)];
                double exact = model.SequenceLogProbability(prefix, [score.Tokens[t]]);
                // float32 logits from the tabular session, float64 from there on: float rounding of log p.
                Assert.Equal(exact, score.TokenLogProbs[t].LogProb, 1e-7);
                double best = Enumerable.Range(0, model.Info.VocabularySize).Max(a => model.SequenceLogProbability(prefix, [a]));
                greedy &= exact >= best - 1e-12;
                Assert.Equal(best, score.TokenLogProbs[t].Top[0].LogProb, 1e-7);
            }
            Assert.Equal(greedy, score.IsGreedy);
            Assert.Equal(score.TokenLogProbs.Sum(e => e.LogProb), score.LogProb, 12);
            Assert.Equal(model.SequenceLogProbability(prompt, [.. score.Tokens]), score.LogProb, 1e-6);
        }
    }

    [Fact]
    public async Task A_greedy_output_scores_as_greedy_with_the_values_it_was_sampled_with()
    {
        using var engine = Engine(shared.Model);
        var greedy = (await engine.RunAsync(new DecodingRequest
        {
            Prompt = Prompt,
            Options = new GenerationOptions { MaxTokens = 24, Sampling = new SamplingParameters(0f), Logprobs = true },
        }))[0];
        var score = await engine.ScoreAsync(Prompt, greedy.Text, topLogprobs: 2);
        int n = Math.Min(score.Tokens.Count, greedy.Tokens.Count);
        Assert.True(n > 10);
        Assert.Equal(greedy.Tokens.Take(n), score.Tokens.Take(n));
        Assert.True(score.IsGreedy);
        for (int i = 0; i < n; i++) Assert.Equal(greedy.TokenLogProbs![i].LogProb, score.TokenLogProbs[i].LogProb, 1e-5);
        Assert.Equal(n - 1, score.TokensEvaluated);
    }

    [Fact]
    public async Task Scores_batched_with_generation_equal_their_solo_runs_and_the_prompt_can_be_scored_too()
    {
        using var solo = Engine(shared.Model);
        var alone = await solo.ScoreAsync(Prompt, ", there was a little girl named Lily.", topLogprobs: 4);
        using var engine = Engine(shared.Model);
        var generation = engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = 4, MaxTokens = 40 } });
        var scores = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => engine.ScoreAsync(Prompt, ", there was a little girl named Lily.", topLogprobs: 4)));
        await generation;
        foreach (var s in scores)
        {
            Assert.Equal(alone.Tokens, s.Tokens);
            for (int i = 0; i < s.Tokens.Count; i++)
            {
                Assert.Equal(alone.TokenLogProbs[i].LogProb, s.TokenLogProbs[i].LogProb, 1e-5);
                Assert.Equal(alone.TokenLogProbs[i].Top.Select(a => a.Token), s.TokenLogProbs[i].Top.Select(a => a.Token));
            }
        }

        // The prompt's own tokens: the first has no prefix (NaN); the rest equal the continuation values of a shorter prompt.
        var whole = await engine.ScoreAsync(Prompt, "", includePrompt: true);
        Assert.Empty(whole.Tokens);
        var promptLps = whole.PromptLogProbs!;
        Assert.Equal(whole.PromptTokens.Count, promptLps.Count);
        Assert.True(double.IsNaN(promptLps[0].LogProb));
        var split = await engine.ScoreAsync("Once upon", " a time");
        Assert.Equal(whole.PromptTokens.Skip(whole.PromptTokens.Count - split.Tokens.Count), split.Tokens);
        for (int i = 0; i < split.Tokens.Count; i++)
            Assert.Equal(promptLps[promptLps.Count - split.Tokens.Count + i].LogProb, split.TokenLogProbs[i].LogProb, 1e-5);
    }
}
