namespace Tilt.Engine.Training;

/// <summary>
/// One continuation sampled from the base model, with the reward of the finished text and the model's final hidden
/// state after some of its prefixes: row i of <see cref="Features"/> is the hidden state after the prompt and the
/// first <see cref="Positions"/>[i] generated tokens (position 0: after the prompt alone). A stop token is never
/// decoded, so a finished rollout's positions stop before it.
/// </summary>
public sealed class Rollout
{
    /// <summary>Index of the prompt in <see cref="RolloutSet.Prompts"/>.</summary>
    public required int PromptIndex { get; init; }

    /// <summary>Generated tokens, the stop token included when <see cref="Finished"/>.</summary>
    public required int[] Tokens { get; init; }

    /// <summary>The continuation text (no prompt, no stop token).</summary>
    public required string Text { get; init; }

    /// <summary>True when a stop token ended it; false when the token limit cut it.</summary>
    public required bool Finished { get; init; }

    /// <summary>r(x, y) of the text as the reward scored it.</summary>
    public required double Reward { get; init; }

    /// <summary>Weight of the rollout in every loss (1 for sampled rollouts; exact probabilities when enumerated).</summary>
    public double Weight { get; init; } = 1.0;

    /// <summary>Prefix lengths with a recorded hidden state, ascending.</summary>
    public required int[] Positions { get; init; }

    /// <summary>[Positions.Length, d] row-major hidden states.</summary>
    public required ReadOnlyMemory<float> Features { get; init; }

    /// <summary>Generated tokens without the stop token.</summary>
    public int TextTokenCount => Finished ? Tokens.Length - 1 : Tokens.Length;
}

/// <summary>Rollouts of one model and reward, as collected by <see cref="RolloutCollector"/> (or built by hand).</summary>
public sealed class RolloutSet
{
    /// <param name="modelFingerprint">The model whose hidden states the features are.</param>
    /// <param name="hiddenSize">d.</param>
    /// <param name="prompts">The prompts.</param>
    /// <param name="promptTokens">Each prompt's tokens as the model read them.</param>
    /// <param name="rollouts">The rollouts (validated against d and the prompts).</param>
    /// <param name="maxTokens">The token limit the rollouts were sampled with.</param>
    /// <param name="rewardDescription">The reward's description, for head metadata.</param>
    public RolloutSet(string modelFingerprint, int hiddenSize, IReadOnlyList<string> prompts, IReadOnlyList<int[]> promptTokens,
        IReadOnlyList<Rollout> rollouts, int maxTokens, string rewardDescription)
    {
        ArgumentNullException.ThrowIfNull(modelFingerprint);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(promptTokens);
        ArgumentNullException.ThrowIfNull(rollouts);
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        if (prompts.Count != promptTokens.Count) throw new ArgumentException($"{prompts.Count} prompts but {promptTokens.Count} token lists", nameof(promptTokens));
        for (int i = 0; i < rollouts.Count; i++)
        {
            var r = rollouts[i];
            if ((uint)r.PromptIndex >= (uint)prompts.Count) throw new ArgumentException($"rollout {i}: prompt index {r.PromptIndex} is not one of {prompts.Count} prompts", nameof(rollouts));
            if (r.Features.Length != r.Positions.Length * hiddenSize)
                throw new ArgumentException($"rollout {i}: {r.Features.Length} feature values for {r.Positions.Length} positions of d = {hiddenSize}", nameof(rollouts));
            for (int p = 0; p < r.Positions.Length; p++)
            {
                if (r.Positions[p] < 0 || r.Positions[p] > r.TextTokenCount || (p > 0 && r.Positions[p] <= r.Positions[p - 1]))
                    throw new ArgumentException($"rollout {i}: positions must ascend within 0..{r.TextTokenCount}, got {r.Positions[p]}", nameof(rollouts));
            }
            if (!double.IsFinite(r.Reward) || !(r.Weight >= 0) || !double.IsFinite(r.Weight))
                throw new ArgumentException($"rollout {i}: reward {r.Reward} and weight {r.Weight} must be finite (weight >= 0)", nameof(rollouts));
        }
        ModelFingerprint = modelFingerprint;
        HiddenSize = hiddenSize;
        Prompts = prompts;
        PromptTokens = promptTokens;
        Rollouts = rollouts;
        MaxTokens = maxTokens;
        RewardDescription = rewardDescription ?? "";
    }

    public string ModelFingerprint { get; }
    public int HiddenSize { get; }
    public IReadOnlyList<string> Prompts { get; }
    public IReadOnlyList<int[]> PromptTokens { get; }
    public IReadOnlyList<Rollout> Rollouts { get; }
    public int MaxTokens { get; }
    public string RewardDescription { get; }

    /// <summary>Recorded prefixes over all rollouts (training rows of CD-FUDGE).</summary>
    public long PrefixCount => Rollouts.Sum(r => (long)r.Positions.Length);

    /// <summary>The hidden state of recorded prefix <paramref name="row"/> of rollout <paramref name="rollout"/>.</summary>
    public ReadOnlySpan<float> Feature(int rollout, int row) => Rollouts[rollout].Features.Span.Slice(row * HiddenSize, HiddenSize);
}

/// <summary>Selected prefixes of a rollout set as feature rows: (rollout, row) pairs.</summary>
internal sealed class PrefixRows : IFeatureRows
{
    private readonly RolloutSet _set;

    public PrefixRows(RolloutSet set, int[] rollouts, int[] rows)
    {
        _set = set;
        RolloutOf = rollouts;
        RowOf = rows;
    }

    /// <summary>Every recorded prefix of the given rollouts.</summary>
    public static PrefixRows All(RolloutSet set, IEnumerable<int> rollouts)
    {
        var r = new List<int>();
        var p = new List<int>();
        foreach (int i in rollouts)
        {
            for (int j = 0; j < set.Rollouts[i].Positions.Length; j++)
            {
                r.Add(i);
                p.Add(j);
            }
        }
        return new PrefixRows(set, r.ToArray(), p.ToArray());
    }

    public int[] RolloutOf { get; }
    public int[] RowOf { get; }
    public int Count => RolloutOf.Length;
    public int Dimension => _set.HiddenSize;
    public ReadOnlySpan<float> Row(int i) => _set.Feature(RolloutOf[i], RowOf[i]);

    /// <summary>Prefix length of row i.</summary>
    public int Position(int i) => _set.Rollouts[RolloutOf[i]].Positions[RowOf[i]];

    /// <summary>[Count] realized reward of each row's rollout (the CD-FUDGE target [M16]).</summary>
    public double[] Rewards() => RolloutOf.Select(r => _set.Rollouts[r].Reward).ToArray();

    /// <summary>[Count] weight of each row's rollout.</summary>
    public double[] Weights() => RolloutOf.Select(r => _set.Rollouts[r].Weight).ToArray();
}
