using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;

namespace Tilt.Engine.Values;

/// <summary>Which exact value of a tabular model.</summary>
public enum ExactValueKind
{
    /// <summary>V*(x, y^t) = E_p[r(x, y) | y^t] [M13], the value controlled decoding is defined with.</summary>
    Expected,

    /// <summary>
    /// The soft value beta log E_p[exp(r(x, y)/beta) | y^t]. Tilting p(z | s) by exp(V/beta) with this value
    /// samples the sequence-level optimum pi*_beta(y) ∝ p(y) exp(r(y)/beta) [M2] exactly; with the expected
    /// value [M13] the token-wise policy [M14] only approximates it (Jensen: the two agree when the
    /// continuation's reward is deterministic).
    /// </summary>
    Soft,
}

/// <summary>
/// Exact values of a tabular model by enumerating every completion of a prefix up to the response's token
/// limit, each weighted by its exact probability and scored by the reward. For tests and for trying
/// strategies on a model small enough to enumerate (`--value exact`).
/// </summary>
public sealed class TabularExactValue : IValueFunction
{
    private readonly TabularModel _model;
    private readonly IReward _reward;
    private readonly int _maxTokens;
    private readonly ExactValueKind _kind;
    private readonly double _beta;
    private readonly Dictionary<string, double> _cache = new(StringComparer.Ordinal);

    /// <param name="maxTokens">The response's token limit: completions stop there, as the strategy's do.</param>
    /// <param name="beta">Temperature of the soft value (ignored for <see cref="ExactValueKind.Expected"/>).</param>
    public TabularExactValue(TabularModel model, IReward reward, int maxTokens, ExactValueKind kind = ExactValueKind.Expected, double beta = 1.0)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        if (reward.NeedsHiddenState) throw new ArgumentException("exact tabular values need a reward that reads text, not hidden states", nameof(reward));
        _maxTokens = maxTokens;
        _kind = kind;
        _beta = kind == ExactValueKind.Soft ? AlignedFamily.CheckBeta(beta, nameof(beta)) : beta;
    }

    public string Description => _kind == ExactValueKind.Expected ? $"exact({_reward.Description})" : $"exact-soft({_reward.Description}, beta={_beta:R})";
    public bool NeedsInputs => true;

    public void Evaluate(IReadOnlyList<RewardInput>? inputs, ReadOnlySpan<float> hidden, int count, Span<double> values)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        for (int i = 0; i < count; i++) values[i] = Value(inputs[i]);
    }

    /// <summary>The exact value of one prefix (cached per prompt and prefix).</summary>
    public double Value(RewardInput input)
    {
        string key = string.Join(',', input.RequirePromptTokens(Description)) + "|" + string.Join(',', input.Tokens);
        if (_cache.TryGetValue(key, out double cached)) return cached;
        double value = Compute(input);
        _cache[key] = value;
        return value;
    }

    private double Compute(RewardInput input)
    {
        int remaining = _maxTokens - input.Tokens.Count;
        if (input.IsFinished || remaining <= 0) return Score([Candidate(input.Prompt, input.Tokens, input.IsFinished)])[0];

        int[] prefix = [.. input.RequirePromptTokens(Description), .. input.Tokens];
        var completions = _model.EnumerateOutputs(prefix, remaining);
        var candidates = completions.Select(c => Candidate(input.Prompt, [.. input.Tokens, .. c.Tokens], c.EndsWithEos)).ToArray();
        var rewards = Score(candidates);
        if (_kind == ExactValueKind.Expected)
        {
            double sum = 0;
            for (int j = 0; j < rewards.Length; j++) sum += Math.Exp(completions[j].LogProbability) * rewards[j];
            return sum;
        }
        // beta * log sum_c p(c) exp(r_c / beta), shifted by the max exponent for stability.
        double max = double.NegativeInfinity;
        for (int j = 0; j < rewards.Length; j++) max = Math.Max(max, completions[j].LogProbability + rewards[j] / _beta);
        double acc = 0;
        for (int j = 0; j < rewards.Length; j++) acc += Math.Exp(completions[j].LogProbability + rewards[j] / _beta - max);
        return _beta * (max + Math.Log(acc));
    }

    private RewardInput Candidate(string prompt, IReadOnlyList<int> tokens, bool finished) => new()
    {
        Prompt = prompt,
        Text = _model.Detokenize(tokens.ToArray()),
        Tokens = tokens,
        IsFinished = finished,
    };

    private double[] Score(IReadOnlyList<RewardInput> candidates)
    {
        var rewards = new double[candidates.Count];
        _reward.ScoreChecked(candidates, rewards);
        return rewards;
    }
}
