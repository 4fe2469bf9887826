using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Tests.Models;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Engine.Tests.Rewards;

/// <summary>
/// DPO's implicit reward and its token-level value [M23] on two tabular models with one vocabulary (the story chain
/// as the reference and a "policy" with other transitions on the same support), and on stories260K against a copy
/// with noise added to one tensor.
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class DpoRewardTests(SharedModel shared) : IDisposable
{
    private const int MaxTokens = 4;
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-dpo-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The story chain with other probabilities on the same transitions (a happier, homeward policy).</summary>
    internal const string PolicyJson = """
        {
          "format": "tilt-tabular/1",
          "description": "a DPO-style policy of the story chain: same words, happier transitions",
          "vocabulary": ["<eos>", "the", "cat", "dog", "was", "happy", "sad", "and", "ran", "home"],
          "eos": "<eos>",
          "start": { "the": 1.0 },
          "transitions": {
            "the":   { "cat": 0.7, "dog": 0.3 },
            "cat":   { "was": 0.8, "ran": 0.2 },
            "dog":   { "was": 0.3, "ran": 0.7 },
            "was":   { "happy": 0.85, "sad": 0.15 },
            "happy": { "and": 0.5, "<eos>": 0.5 },
            "sad":   { "and": 0.8, "<eos>": 0.2 },
            "and":   { "ran": 0.9, "the": 0.1 },
            "ran":   { "home": 0.9, "<eos>": 0.1 },
            "home":  { "<eos>": 1.0 }
          }
        }
        """;

    private string WritePolicy()
    {
        string path = Path.Combine(_dir, "policy.json");
        File.WriteAllText(path, PolicyJson);
        return path;
    }

    [Fact]
    public void TheRewardIsBetaTimesTheEnumeratedLogRatio()
    {
        const double beta = 0.7;
        var policy = TabularModel.Load(WritePolicy());
        var reference = TabularModel.Load(TabularModelTests.ExamplePath());
        var reward = (DpoReward)RewardSpec.Parse($"dpo:{policy.Info.Path},{reference.Info.Path},beta=0.7");
        var outputs = reference.EnumerateOutputs([], MaxTokens);
        var inputs = outputs.Select(o => new RewardInput { Prompt = "", Text = reference.Detokenize(o.Tokens), Tokens = o.Tokens, IsFinished = o.EndsWithEos }).ToArray();
        var r = new double[inputs.Length];
        reward.Score(inputs, r);
        for (int i = 0; i < outputs.Count; i++)
        {
            double exact = beta * (policy.SequenceLogProbability([], outputs[i].Tokens) - reference.SequenceLogProbability([], outputs[i].Tokens));
            // Logits are float32 log-probabilities: agreement to float rounding, summed over at most 4 tokens.
            Assert.True(Math.Abs(r[i] - exact) < 1e-6, $"output {i}: reward {r[i]} vs exact {exact}");
        }
        Assert.Contains(r, x => Math.Abs(x) > 0.1); // the models differ, so the test can fail
        Assert.StartsWith($"dpo:{policy.Info.Path},{reference.Info.Path},beta=0.7", reward.Description);
        Assert.Equal(reward.Description, RewardSpec.Parse(reward.Description).Description);
    }

    [Fact]
    public async Task TokenwiseCdWithTheDpoValueSamplesThePolicyExactly()
    {
        // V = beta * sum of log-ratios over the prefix, tilted by exp(V / beta) over the whole vocabulary: each step is
        // p_ref(z) * pi(z) / p_ref(z) = pi(z), so the outputs follow the policy [M14], [M23]. 6,000 draws with a fixed
        // seed, Pearson's chi-square at alpha = 1e-3 (a correct sampler fails for a random seed with probability 1e-3).
        const double beta = 0.25;
        const int draws = 6_000;
        var policy = TabularModel.Load(WritePolicy());
        var reference = TabularModel.Load(TabularModelTests.ExamplePath());
        using var models = DpoModels.Create(policy, reference, beta);
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        var results = await OwnEngine.Run(reference, kernels, "", reward: new DpoReward(models), value: new DpoValue(models), options: new TokenwiseOptions { Candidates = 0, Beta = beta, MaxTokens = MaxTokens, Samples = draws, Seed = 41 });

        var outputs = policy.EnumerateOutputs([], MaxTokens);
        var index = outputs.Select((o, i) => (Key: string.Join(",", o.Tokens), i)).ToDictionary(x => x.Key, x => x.i);
        var counts = new long[outputs.Count];
        foreach (var s in results) counts[index[string.Join(",", s.Tokens)]]++;
        var exact = outputs.Select(o => Math.Exp(o.LogProbability)).ToArray();
        var (statistic, df, p) = GoodnessOfFit.ChiSquare(counts, exact);
        Assert.True(p > 1e-3, $"token-wise CD with the DPO value vs pi_policy: chi-square {statistic:F1} on {df} df, p = {p:E2}");
        var referenceP = outputs.Select(o => Math.Exp(reference.SequenceLogProbability([], o.Tokens))).ToArray();
        var (_, _, pBase) = GoodnessOfFit.ChiSquare(counts, referenceP);
        Assert.True(pBase < 1e-6, $"the samples also fit the reference (p = {pBase:E2}): the value did nothing");
    }

    [Fact]
    public async Task OnStories260KTheBatchedRewardMatchesOnePrefillPerToken()
    {
        string perturbed = Path.Combine(_dir, "stories260K-perturbed.gguf");
        string tensor = PerturbedCopy(shared.Path, perturbed, sigmaOfRms: 0.5, seed: 7);
        var reward = (DpoReward)RewardSpec.Parse($"dpo:{perturbed},{shared.Path},beta=0.5");
        var self = (DpoReward)RewardSpec.Parse($"dpo:{shared.Path},{shared.Path}");
        try
        {
            const string prompt = "Once upon a time";
            var candidates = await SampleCandidates(shared.Model, prompt, count: 6, maxTokens: 24);
            var inputs = candidates.Select(c => new RewardInput { Prompt = prompt, Text = shared.Model.Detokenize(c), Tokens = c, IsFinished = false }).ToArray();
            var r = new double[inputs.Length];
            reward.Score(inputs, r);
            var zero = new double[inputs.Length];
            self.Score(inputs, zero);

            int[] promptTokens = shared.Model.Tokenize(prompt);
            using var policy = GgufModel.Load(perturbed);
            for (int i = 0; i < candidates.Length; i++)
            {
                // Reference computation: each token's log-probability from its own prefill of prompt + prefix, one sequence.
                double expected = 0.5 * (UnbatchedLogProbability(policy, promptTokens, candidates[i]) - UnbatchedLogProbability(shared.Model, promptTokens, candidates[i]));
                Assert.True(Math.Abs(r[i] - expected) < 1e-3 * candidates[i].Length + 1e-3, $"candidate {i}: batched {r[i]} vs unbatched {expected} ({tensor} perturbed)");
                Assert.Equal(0.0, zero[i], 9); // a model against itself
            }
            Assert.Contains(r, x => Math.Abs(x) > 0.05);
        }
        finally
        {
            reward.Dispose();
            self.Dispose();
        }
    }

    [Fact]
    public void ModelsOfDifferentVocabulariesAreRefusedNamingBothFiles()
    {
        string other = Path.Combine(_dir, "other-vocab.gguf");
        SyntheticModel.Write(other, new ModelShape("tiny", 32, 1, 2, 2, 64), SentencePieceVocabulary.Synthesize(400), GgufTensorType.F32, seed: 3);
        var e = Assert.Throws<TiltException>(() => RewardSpec.Parse($"dpo:{other},{shared.Path}"));
        Assert.Contains(other, e.Message);
        Assert.Contains(shared.Path, e.Message);
        Assert.Contains("vocabulary", e.Message);

        var tabular = Assert.Throws<TiltException>(() => RewardSpec.Parse($"dpo:{TabularModelTests.ExamplePath()},{shared.Path}"));
        Assert.Contains("do not share a vocabulary", tabular.Message);
        Assert.Contains("beta", Assert.Throws<TiltException>(() => RewardSpec.Parse($"dpo:{shared.Path},{shared.Path},beta=-1")).Message);
        Assert.Contains("dpo:POLICY", Assert.Throws<TiltException>(() => RewardSpec.Parse($"dpo:{shared.Path}")).Message);
    }

    private static async Task<int[][]> SampleCandidates(ILanguageModel model, string prompt, int count, int maxTokens)
    {
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        var results = await OwnEngine.Run(model, kernels, prompt, new Tilt.Engine.Requests.GenerationOptions { Samples = count, MaxTokens = maxTokens, Seed = 3 });
        return results.Select(s => s.Tokens.Where(t => !model.Info.IsStop(t)).ToArray()).ToArray();
    }

    private static double UnbatchedLogProbability(ILanguageModel model, int[] prompt, int[] continuation)
    {
        double sum = 0;
        for (int t = 0; t < continuation.Length; t++)
        {
            using var session = model.CreateSession(new SessionOptions { MaxSequences = 1, MaxSequenceLength = prompt.Length + continuation.Length + 1, KvCacheType = KvCacheType.F32 });
            session.Prefill(0, [.. prompt, .. continuation[..t]]);
            var logits = session.Logits[..session.VocabularySize].ToArray();
            double max = logits.Max();
            double lse = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
            sum += logits[continuation[t]] - lse;
        }
        return sum;
    }

    /// <summary>Copies a GGUF file with Gaussian noise (sigma = a fraction of the tensor's RMS) added to its largest F32 tensor.</summary>
    internal static string PerturbedCopy(string source, string destination, double sigmaOfRms, int seed)
    {
        File.Copy(source, destination, overwrite: true);
        var header = GgufHeader.Read(source);
        var tensor = header.Tensors.Where(t => t.GgmlType == 0 && t.Dimensions.Length == 2).MaxBy(t => t.ElementCount)
            ?? throw new InvalidOperationException($"{source} has no 2-D F32 tensor to perturb");
        using var file = new FileStream(destination, FileMode.Open, FileAccess.ReadWrite);
        long offset = header.DataOffset + tensor.Offset;
        var bytes = new byte[checked((int)(tensor.ElementCount * sizeof(float)))];
        file.Position = offset;
        file.ReadExactly(bytes);
        Span<float> values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
        double rms = Math.Sqrt(values.ToArray().Average(v => (double)v * v));
        var random = new Random(seed);
        for (int i = 0; i < values.Length; i++)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            values[i] += (float)(sigmaOfRms * rms * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        file.Position = offset;
        file.Write(bytes);
        return tensor.Name;
    }
}
