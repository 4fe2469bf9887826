using Tilt.Engine.Rewards;

namespace Tilt.Engine.Values;

/// <summary>
/// The reward applied to the unfinished prefix, V(x, y^t) = r(x, y^t): a crude stand-in for V* [M13] that
/// needs no training, so every strategy works with any reward before a value head exists. It is exact
/// for a finished prefix and, for rewards that accumulate along the text (lexicons, regex counts), a
/// greedy look-ahead of zero tokens otherwise.
/// </summary>
public sealed class PrefixRewardValue(IReward reward) : IValueFunction
{
    private readonly IReward _reward = reward ?? throw new ArgumentNullException(nameof(reward));

    public string Description => $"prefix({_reward.Description})";
    public bool NeedsInputs => true;

    public void Evaluate(IReadOnlyList<RewardInput>? inputs, ReadOnlySpan<float> hidden, int count, Span<double> values)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (!_reward.NeedsHiddenState)
        {
            // The prefixes are the reward's inputs as they are (one type for both): nothing is copied.
            _reward.ScoreChecked(inputs.Count == count ? inputs : [.. inputs.Take(count)], values[..count]);
            return;
        }
        int d = count > 0 ? hidden.Length / count : 0;
        var candidates = new RewardInput[count];
        for (int i = 0; i < count; i++) candidates[i] = inputs[i] with { FinalHidden = hidden.Slice(i * d, d).ToArray() };
        _reward.ScoreChecked(candidates, values[..count]);
    }
}
