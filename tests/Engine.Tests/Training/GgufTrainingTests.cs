using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Training;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Engine.Tests.Training;

/// <summary>Training on stories260K with the built-in sentiment lexicon (positive words +1, negative -1).</summary>
[Collection(SharedModelCollection.Name)]
public sealed class GgufTrainingTests(SharedModel shared) : IDisposable
{
    private const int MaxTokens = 32;
    private static readonly IReward Sentiment = RewardSpec.Parse("lexicon:sentiment");
    private static readonly object Gate = new();
    private static RolloutSet? _rollouts;
    private static ValueTrainingResult? _fudge;

    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);

    public void Dispose() => _kernels.Dispose();

    /// <summary>2000 rollouts of 32 tokens over the built-in story openings (shared by the tests of this class).</summary>
    private (RolloutSet Set, ValueTrainingResult Fudge) Trained()
    {
        lock (Gate)
        {
            _rollouts ??= new RolloutCollector(shared.Model, _kernels, Sentiment)
                .Collect(PromptSet.StoryOpenings, new RolloutOptions { Rollouts = 2000, MaxTokens = MaxTokens, Seed = 1 });
            _fudge ??= new ValueTrainer(shared.Model, Sentiment).Train(_rollouts, new ValueTrainingOptions { Seed = 1 });
            return (_rollouts, _fudge);
        }
    }

    [Fact]
    public async Task RolloutsAreTheBaseSamplersTextsWithAHiddenStateAfterEveryPrefix()
    {
        const string prompt = "Once upon a time";
        var set = new RolloutCollector(shared.Model, _kernels, Sentiment).Collect([prompt],
            new RolloutOptions { Rollouts = 6, MaxTokens = 20, Seed = 5, KvCacheType = KvCacheType.F32 });
        var samples = await OwnEngine.Run(shared.Model, _kernels, prompt,
            new GenerationOptions { Samples = 6, MaxTokens = 20, Seed = 5 }, kv: KvCacheType.F32);
        int d = shared.Model.Info.HiddenSize;
        var featurizer = new TextFeaturizer(shared.Model, TextFeature.Last, kvCacheType: KvCacheType.F32);
        var last = featurizer.Featurize(set.Rollouts.Select(r => (prompt, r.Text)).ToArray());
        for (int i = 0; i < 6; i++)
        {
            var r = set.Rollouts[i];
            // Rollout i draws from RNG row i, like base sample i: the same text.
            Assert.Equal(samples[i].Tokens, r.Tokens);
            Assert.Equal(samples[i].Text, r.Text);
            Assert.Equal(Enumerable.Range(0, r.TextTokenCount + 1), r.Positions);
            Assert.Equal(Sentiment.Score(new RewardInput { Prompt = prompt, Text = r.Text, Tokens = r.Tokens, IsFinished = r.Finished }), r.Reward);
            // Every rollout starts from the prompt's own state.
            Assert.Equal(set.Rollouts[0].Features.Span[..d].ToArray(), r.Features.Span[..d].ToArray());

            // prompt + text re-tokenizes to the prompt's tokens plus the generated ones, so the text feature of a
            // reward head is the state the decoder had after the last text token (tolerance: batch vs single-sequence
            // float rounding with an F32 cache).
            var (tokens, start) = TextFeaturizer.Tokenize(shared.Model, prompt, r.Text);
            Assert.Equal(set.PromptTokens[0].Length, start);
            Assert.Equal(r.Tokens.Take(r.TextTokenCount), tokens.Skip(start));
            var recorded = r.Features.Span.Slice(r.TextTokenCount * d, d);
            for (int j = 0; j < d; j++) Assert.Equal(recorded[j], last[i * d + j], 1e-3f);
        }
    }

    [Fact]
    public async Task AFudgeHeadHasPositiveHeldOutR2AtMiddleLengthsAndBeatsARandomHeadInBlockwiseCd()
    {
        var (_, fudge) = Trained();
        var byLength = fudge.Report.HeldOut.ByPrefixLength;
        foreach (var bucket in byLength.Where(b => b.From is 8 or 16))
            Assert.True(bucket.RSquared > 0, $"held-out R^2 {bucket.RSquared:F4} at prefix lengths {bucket.From}-{bucket.To}");
        Assert.Contains(byLength, b => b.From == 16);

        // The random head: same bias and the same weight norm (normalization folded in), a random direction.
        var trained = (LinearValueHead)fudge.File.ToKernelHead();
        double norm = Math.Sqrt(trained.Weights.ToArray().Sum(w => (double)w * w));
        var random = new Random(2);
        var direction = Enumerable.Range(0, trained.InputSize).Select(_ => random.NextDouble() - 0.5).ToArray();
        double length = Math.Sqrt(direction.Sum(x => x * x));
        float[] weights = [.. direction.Select(x => (float)(x / length * norm)), trained.Bias];
        var randomFile = new HeadFile(new HeadHeader { Kind = HeadKind.Linear, Role = HeadRole.Value, ModelFingerprint = shared.Model.Info.Fingerprint, HiddenSize = trained.InputSize }, weights);

        async Task<double> MeanReward(HeadFile head)
        {
            var value = new HeadValue(head, shared.Model.Info, "test");
            double sum = 0;
            int count = 0;
            foreach (string prompt in PromptSet.StoryOpenings.Take(4))
            {
                var outputs = await OwnEngine.Run(shared.Model, _kernels, prompt, reward: Sentiment, value: value, options: new BlockwiseOptions { K = 8, BlockSize = 8, MaxTokens = MaxTokens, Samples = 6, Seed = 11 });
                sum += outputs.Sum(o => o.Reward);
                count += outputs.Count;
            }
            return sum / count;
        }
        double withTrained = await MeanReward(fudge.File);
        double withRandom = await MeanReward(randomFile);
        // Same seeds: both pick among the same candidate blocks at the first block of every output.
        Assert.True(withTrained > withRandom + 0.3, $"blockwise CD mean reward: trained head {withTrained:F3}, random head {withRandom:F3}");
    }

    [Fact]
    public void CdQStartsFromCdFudgeAndChecksEveryIterateOnValidationRollouts()
    {
        var (set, fudge) = Trained();
        var q = new ValueTrainer(shared.Model, Sentiment).Train(set, new ValueTrainingOptions
        {
            Method = ValueMethod.Q,
            QMaxPrefixes = 256,
            QIterations = 2,
            QTopK = 4,
            Seed = 1,
        });
        Assert.Equal(ValueMethod.Q, q.Report.Method);
        Assert.Equal(256, q.Report.QPrefixes);
        Assert.Equal(3, q.Report.QIterations.Count);
        Assert.All(q.Report.QIterations, i => Assert.True(double.IsFinite(i.ValidationMse) && double.IsFinite(i.BellmanResidual)));
        // The kept iterate is the one with the lowest validation error.
        var best = q.Report.QIterations.MinBy(i => i.ValidationMse)!;
        Assert.Equal(best.Iteration, q.Report.QChosenIteration);
        Assert.Equal("cd-q", q.File.Header.Training!["method"].GetString());
        Assert.Equal(fudge.Report.HeldOut.Rollouts, q.Report.HeldOut.Rollouts);
        Assert.True(double.IsFinite(q.Report.HeldOut.RSquared));
    }

    [Fact]
    public void BradleyTerryLearnsTheLexiconsPreferenceFromGeneratedPairs()
    {
        var pairs = new PairGenerator(shared.Model, _kernels, Sentiment).GeneratePairs(PromptSet.StoryOpenings,
            new PairOptions { Count = 300, MaxTokens = MaxTokens, Seed = 3 });
        Assert.Equal(300, pairs.Count);
        Assert.All(pairs, p => Assert.True(p.ChosenReward > p.RejectedReward));
        var result = new RewardTrainer(shared.Model).TrainBradleyTerry(
            pairs.Select(p => new PreferencePair(p.Prompt, p.Chosen, p.Rejected)).ToArray(), new RewardTrainingOptions { Seed = 1, Feature = TextFeature.Mean });
        // Chance is 0.5. A lexicon counts words anywhere in the text, which the mean of the states over the text sees
        // (measured 0.77 on 1000 pairs of 64 tokens) far better than the last state does (0.55).
        Assert.True(result.Report.HeldOut.Accuracy > 0.62, $"held-out pairwise accuracy {result.Report.HeldOut.Accuracy:F3}");
        Assert.Equal(60, result.Report.HeldOut.Examples);
        Assert.Equal("mean", result.File!.Header.Feature);

        // A mean-pooled head cannot score candidates while decoding: loading it as a reward says so.
        var e = Assert.Throws<TiltException>(() => new HeadReward(result.File!, shared.Model.Info, "bt.head"));
        Assert.Contains("'mean'", e.Message);
    }
}
