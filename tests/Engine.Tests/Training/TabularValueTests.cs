using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Tests.Models;
using Tilt.Engine.Training;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Tests.Training;

/// <summary>
/// Value training on the tabular story chain, whose features are the one-hot Markov state (a linear head is a lookup
/// table) and whose V* [M13] is computed exactly by enumeration.
/// <para>
/// Setup that lets a state-only value represent V*: the reward depends only on the LAST word of the text (happy 1,
/// home 0.5, sad -1, anything else 0), so the expected reward of a prefix depends only on its Markov state, except
/// through the token limit. The limit is 30 tokens: the only way to be long is the loop "the X was happy|sad and the",
/// taken with probability ~0.1 per 5 tokens, so the mass cut by the limit from any prefix of at most 5 tokens is
/// below 1e-5, far inside every tolerance below. V* is compared at such prefixes.
/// </para>
/// </summary>
public sealed class TabularValueTests : IDisposable
{
    private const int MaxTokens = 30;
    private readonly TabularModel _model = TabularModel.Load(TabularModelTests.ExamplePath());
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly IReward _reward;
    private readonly TabularExactValue _exact;

    public TabularValueTests()
    {
        _reward = new CallbackReward(LastWordReward, "last-word");
        _exact = new TabularExactValue(_model, _reward, MaxTokens);
    }

    public void Dispose() => _kernels.Dispose();

    private double LastWordReward(RewardInput input)
    {
        int last = -1;
        foreach (int t in input.Tokens) if (t != _model.Info.EosToken) last = t;
        return last < 0 ? 0 : _model.TokenText(last) switch { "happy" => 1.0, "home" => 0.5, "sad" => -1.0, _ => 0.0 };
    }

    /// <summary>For every non-EOS state: a shortest prefix that reaches it (start state: the empty prefix).</summary>
    private Dictionary<int, int[]> ShortestPrefixes()
    {
        var found = new Dictionary<int, int[]> { [_model.StartState] = [] };
        var frontier = new Queue<int[]>([[]]);
        while (frontier.Count > 0)
        {
            var prefix = frontier.Dequeue();
            int state = prefix.Length == 0 ? _model.StartState : prefix[^1];
            for (int t = 0; t < _model.Info.VocabularySize; t++)
            {
                if (t == _model.Info.EosToken || _model.NextProbability(state, t) <= 0 || found.ContainsKey(t)) continue;
                int[] next = [.. prefix, t];
                found[t] = next;
                frontier.Enqueue(next);
            }
        }
        return found;
    }

    private double ExactValue(int[] prefix) => _exact.Value(new RewardInput
    {
        Prompt = "",
        PromptTokens = [],
        Tokens = prefix,
        Text = _model.Detokenize(prefix),
        IsFinished = false,
    });

    private static float[] OneHot(int state, int d)
    {
        var h = new float[d];
        h[state] = 1f;
        return h;
    }

    private void AssertMatchesExactValue(TrainedHead head, double tolerance, string what)
    {
        var scratch = new float[head.ScratchSize];
        var prefixes = ShortestPrefixes();
        Assert.Equal(_model.Info.VocabularySize, prefixes.Count); // every token but EOS, plus the start state
        foreach (var (state, prefix) in prefixes)
        {
            Assert.True(prefix.Length <= 5);
            double exact = ExactValue(prefix);
            double learned = head.Predict(OneHot(state, _model.Info.HiddenSize), scratch);
            string name = state == _model.StartState ? "<start>" : _model.TokenText(state);
            Assert.True(Math.Abs(learned - exact) <= tolerance, $"{what}: V({name}) = {learned:F5}, V* = {exact:F5}");
        }
    }

    private RolloutSet Sample(int rollouts, ulong seed) =>
        new RolloutCollector(_model, _kernels, _reward).Collect([""], new RolloutOptions { Rollouts = rollouts, MaxTokens = MaxTokens, BatchSize = 256, Seed = seed });

    [Fact]
    public void RolloutsRecordTheStateAfterEveryPrefixAndTheRewardOfTheText()
    {
        var set = Sample(200, 1);
        Assert.Equal(200, set.Rollouts.Count);
        Assert.Equal(MaxTokens, set.MaxTokens);
        foreach (var r in set.Rollouts)
        {
            Assert.True(r.Finished, "the chain ends long before 30 tokens");
            Assert.Equal(_model.Info.EosToken, r.Tokens[^1]);
            Assert.Equal(Enumerable.Range(0, r.Tokens.Length), r.Positions); // prefixes 0..T-1: the stop token is not decoded
            Assert.Equal(_model.Detokenize(r.Tokens), r.Text);
            Assert.Equal(LastWordReward(new RewardInput { Prompt = "", Text = r.Text, Tokens = r.Tokens, IsFinished = true }), r.Reward);
            for (int p = 0; p < r.Positions.Length; p++)
            {
                int state = p == 0 ? _model.StartState : r.Tokens[p - 1];
                Assert.Equal(OneHot(state, _model.Info.HiddenSize), r.Features.Span.Slice(p * _model.Info.HiddenSize, _model.Info.HiddenSize).ToArray());
            }
        }
    }

    [Fact]
    public void CdFudgeOnEveryOutputWeightedByItsProbabilityIsExactlyVStar()
    {
        // The population version of [M16]: every output of up to 30 tokens with its exact probability as the weight.
        // The weighted least-squares fit of a one-hot state is the mean final reward over visits to the state, which
        // for a Markov chain and a reward of the future is V*(state).
        var outputs = _model.EnumerateOutputs([], MaxTokens);
        int d = _model.Info.HiddenSize;
        var rollouts = new List<Rollout>(outputs.Count);
        var rewards = new double[outputs.Count];
        var inputs = outputs.Select(o => new RewardInput { Prompt = "", Text = _model.Detokenize(o.Tokens), Tokens = o.Tokens, IsFinished = o.EndsWithEos }).ToArray();
        _reward.ScoreChecked(inputs, rewards);
        for (int i = 0; i < outputs.Count; i++)
        {
            var o = outputs[i];
            int positions = o.EndsWithEos ? o.Tokens.Length : o.Tokens.Length + 1;
            var features = new float[positions * d];
            for (int p = 0; p < positions; p++) features[p * d + (p == 0 ? _model.StartState : o.Tokens[p - 1])] = 1f;
            rollouts.Add(new Rollout
            {
                PromptIndex = 0,
                Tokens = o.Tokens,
                Text = inputs[i].Text,
                Finished = o.EndsWithEos,
                Reward = rewards[i],
                Weight = Math.Exp(o.LogProbability),
                Positions = Enumerable.Range(0, positions).ToArray(),
                Features = features,
            });
        }
        var set = new RolloutSet(_model.Info.Fingerprint, d, [""], [[]], rollouts, MaxTokens, _reward.Description);
        var result = new ValueTrainer(_model, _reward).Train(set, new ValueTrainingOptions { HeldOutFraction = 0, ValidationFraction = 0, Alpha = 1e-9 });
        // Tolerance: the ridge penalty (alpha 1e-9) and the < 1e-5 truncated mass.
        AssertMatchesExactValue(result.Head, 1e-4, "CD-FUDGE, exact weights");
    }

    [Fact]
    public void CdFudgeOnSampledRolloutsConvergesToVStar()
    {
        var set = Sample(4000, 2);
        var result = new ValueTrainer(_model, _reward).Train(set, new ValueTrainingOptions { Seed = 1 });
        // Tolerance: each state is visited by >= ~300 training rollouts and rewards lie in [-1, 1], so the
        // per-state mean has a standard error <= 0.06 / 1.2; 0.08 is about 3 standard errors of the rarest state.
        AssertMatchesExactValue(result.Head, 0.08, "CD-FUDGE, 4000 rollouts");
        // V* explains only part of the reward's variance (the rest is the randomness of the continuation): ~0.14 here.
        Assert.True(result.Report.HeldOut.RSquared > 0.05, $"held-out R^2 {result.Report.HeldOut.RSquared:F3}");
        Assert.Equal(800, result.Report.HeldOut.Rollouts);
        Assert.Equal("cd-fudge", result.File.Header.Training!["method"].GetString());
    }

    [Fact]
    public void CdQsFixedPointIsVStar()
    {
        // Bellman targets over the whole vocabulary (top-k = V: no approximation), the penalty nearly 0, iterated to
        // the fixed point: V(s) = sum_z p(z|s) V(s z), with r at EOS. Its unique solution is V* whatever the noise
        // of the rollouts (they only choose which states are trained: all of them, here).
        var set = Sample(1000, 3);
        var options = new ValueTrainingOptions
        {
            Method = ValueMethod.Q,
            QTopK = _model.Info.VocabularySize,
            QMaxPrefixes = 100_000,
            QPrefixesPerRollout = MaxTokens + 1,
            QIterations = 40,
            QSelection = QSelection.Last,
            Alpha = 1e-9,
            Seed = 2,
        };
        var result = new ValueTrainer(_model, _reward).Train(set, options);
        AssertMatchesExactValue(result.Head, 1e-3, "CD-Q fixed point");
        var iterations = result.Report.QIterations;
        Assert.Equal(41, iterations.Count);
        Assert.True(iterations[^1].BellmanResidual < 1e-8, $"Bellman residual {iterations[^1].BellmanResidual:G3}");
        Assert.True(iterations[^1].BellmanResidual < iterations[0].BellmanResidual);
        Assert.Equal(40, result.Report.QChosenIteration);
    }
}
