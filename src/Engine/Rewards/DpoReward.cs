namespace Tilt.Engine.Rewards;

/// <summary>
/// DPO's implicit reward r(x, y) = beta * (log pi_policy(y|x) - log pi_ref(y|x)) [M23], the stop token included
/// when the candidate finished: <c>dpo:POLICY.gguf,REF.gguf[,beta=B]</c>. All candidates of a call are scored in
/// one batched pass per model (<see cref="DpoModels"/>). Owns the models.
/// </summary>
public sealed class DpoReward(DpoModels models) : IReward, IDisposable
{
    public DpoModels Models { get; } = models ?? throw new ArgumentNullException(nameof(models));

    public string Description => $"dpo:{Models.Argument}";

    public bool NeedsHiddenState => false;

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        var promptTokens = new Dictionary<string, int[]>(StringComparer.Ordinal);
        var prompts = new IReadOnlyList<int>[candidates.Count];
        var continuations = new IReadOnlyList<int>[candidates.Count];
        for (int i = 0; i < candidates.Count; i++)
        {
            string prompt = candidates[i].Prompt;
            if (!promptTokens.TryGetValue(prompt, out var tokens)) promptTokens[prompt] = tokens = Models.Tokenize(prompt);
            prompts[i] = tokens;
            continuations[i] = candidates[i].Tokens;
        }
        double[][] ratios = Models.LogRatios(prompts, continuations);
        for (int i = 0; i < ratios.Length; i++) rewards[i] = Models.Beta * ratios[i].Sum();
    }

    public void Dispose() => Models.Dispose();
}
