namespace Tilt.Engine.Requests;

/// <summary>
/// Scoring a given text instead of generating one (teacher forcing): log p(token | prefix) at T = 1 of every token of
/// <see cref="Continuation"/> after the request's prompt, and of the prompt's own tokens on <see cref="IncludePrompt"/>.
/// The tokens are decoded one per scheduler iteration in the engine's shared decode, beside every other request's rows,
/// and their log-probabilities come from the step's top-N pass (<see cref="DecodingOptions.TopLogprobs"/> alternatives
/// each). <see cref="DecodingOptions.MaxTokens"/>, sampling and stop sequences do not apply.
/// </summary>
public sealed record ScoringOptions : DecodingOptions
{
    /// <summary>
    /// The text to score after the prompt. Its tokens are those the model gives prompt + continuation after the prompt's
    /// own tokens (what log-likelihood harnesses do), or, when the prompt's tokens are not a prefix of those, the
    /// continuation tokenized on its own. Defaults to "" (with <see cref="IncludePrompt"/>: score the prompt alone).
    /// </summary>
    public string Continuation
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Continuation));
    } = "";

    /// <summary>
    /// Also score the prompt's tokens (after the first, which has no prefix: its entry is NaN, OpenAI's null). The prompt is
    /// then teacher-forced token by token instead of prefilled. Defaults to false.
    /// </summary>
    public bool IncludePrompt { get; init; }
}
