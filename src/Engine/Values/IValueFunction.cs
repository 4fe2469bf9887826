using Tilt.Engine.Rewards;
namespace Tilt.Engine.Values;

/// <summary>
/// V(x, y^t): the expected reward of finishing a prefix [M13], as controlled decoding uses it to tilt p
/// [M14] and to pick blocks [M18]. Evaluated on a batch of prefixes at once, from the model's final hidden
/// states (trained heads) and, when <see cref="NeedsInputs"/>, from the prefixes' tokens and text.
/// </summary>
public interface IValueFunction
{
    /// <summary>Spec-like text naming the value, for reports.</summary>
    string Description { get; }

    /// <summary>True when <see cref="Evaluate"/> needs the inputs (text, tokens); false when hidden states suffice.</summary>
    bool NeedsInputs { get; }

    /// <summary>
    /// values[i] = V(prefix i). <paramref name="hidden"/> is [count, d]: the hidden state after each prefix's last
    /// token. <paramref name="inputs"/> is null when <see cref="NeedsInputs"/> is false.
    /// </summary>
    void Evaluate(IReadOnlyList<RewardInput>? inputs, ReadOnlySpan<float> hidden, int count, Span<double> values);
}
