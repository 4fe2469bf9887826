namespace Tilt.Engine.Rewards;

/// <summary>
/// The reward of a response that starts with a forced prefix (<see cref="Tilt.Engine.Requests.DecodingRequest.ForcedPrefix"/>): the
/// candidates the engine scores are the generated part, and the reward must see the whole response, so the forced text and
/// tokens are put in front of each candidate before the inner reward scores it.
/// </summary>
internal sealed class ForcedPrefixReward(IReward inner, string text, int[] tokens) : IReward
{
    public string Description => inner.Description;

    public bool NeedsHiddenState => inner.NeedsHiddenState;

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        var whole = new RewardInput[candidates.Count];
        for (int i = 0; i < whole.Length; i++)
        {
            var c = candidates[i];
            whole[i] = new RewardInput
            {
                Prompt = c.Prompt,
                Text = text + c.Text,
                Tokens = [.. tokens, .. c.Tokens],
                IsFinished = c.IsFinished,
                FinalHidden = c.FinalHidden,
            };
        }
        inner.Score(whole, rewards);
    }
}
