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

    public void Evaluate(IReadOnlyList<ValueInput>? inputs, ReadOnlySpan<float> hidden, int count, Span<double> values)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        int d = count > 0 ? hidden.Length / count : 0;
        var candidates = new RewardInput[count];
        for (int i = 0; i < count; i++)
        {
            candidates[i] = new RewardInput
            {
                Prompt = inputs[i].Prompt,
                Text = inputs[i].Text,
                Tokens = inputs[i].Tokens,
                IsFinished = inputs[i].IsFinished,
                FinalHidden = _reward.NeedsHiddenState ? hidden.Slice(i * d, d).ToArray() : ReadOnlyMemory<float>.Empty,
            };
        }
        _reward.ScoreChecked(candidates, values[..count]);
    }
}
