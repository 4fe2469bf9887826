using Tilt.Engine.Rewards;

namespace Tilt.Engine.Values;

/// <summary>
/// The token-level form of DPO's implicit reward as a value: V(x, y^t) = beta * sum over the prefix of
/// log pi_policy(y_i | x, y_&lt;i) - log pi_ref(y_i | x, y_&lt;i) [M23] (<c>--value dpo:POLICY,REF[,beta=B]</c>).
/// Token-wise CD on the reference with this value and the same beta tilts p_ref(z) by exp(V/beta), and since the
/// prefix's part of V is the same for every candidate z, the tilted step is p_ref(z) pi_policy(z) / p_ref(z) =
/// pi_policy(z): over the whole vocabulary it samples the policy exactly [M14]. Each call teacher-forces every
/// prefix from its prompt (cost grows with the prefix length; no cache across calls).
/// </summary>
public sealed class DpoValue(DpoModels models) : IValueFunction
{
    public DpoModels Models { get; } = models ?? throw new ArgumentNullException(nameof(models));

    public string Description => $"dpo:{Models.Argument}";

    public bool NeedsInputs => true;

    public void Evaluate(IReadOnlyList<RewardInput>? inputs, ReadOnlySpan<float> hidden, int count, Span<double> values)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var prompts = new IReadOnlyList<int>[count];
        var continuations = new IReadOnlyList<int>[count];
        for (int i = 0; i < count; i++)
        {
            prompts[i] = inputs[i].RequirePromptTokens(Description);
            continuations[i] = inputs[i].Tokens;
        }
        double[][] ratios = Models.LogRatios(prompts, continuations);
        for (int i = 0; i < count; i++) values[i] = Models.Beta * ratios[i].Sum();
    }
}
