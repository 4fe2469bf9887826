namespace Tilt.Engine.Values;

/// <summary>What a value function may read of one prefix besides its hidden state.</summary>
public sealed class ValueInput
{
    public required string Prompt { get; init; }

    /// <summary>Prompt token ids (BOS included when the model adds one).</summary>
    public required IReadOnlyList<int> PromptTokens { get; init; }

    /// <summary>Response tokens so far, the candidate token or block included.</summary>
    public required IReadOnlyList<int> Tokens { get; init; }

    /// <summary>Detokenized response so far (stop token excluded).</summary>
    public required string Text { get; init; }

    /// <summary>True when the last token is a stop token: the value is then the reward of the finished text.</summary>
    public required bool IsFinished { get; init; }
}

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
    void Evaluate(IReadOnlyList<ValueInput>? inputs, ReadOnlySpan<float> hidden, int count, Span<double> values);
}
