namespace Tilt.Engine.Models;

/// <summary>What kind of file a model came from.</summary>
public enum ModelKind
{
    /// <summary>A GGUF file run by llama.cpp through LLamaSharp.</summary>
    Gguf,

    /// <summary>A small Markov model from a JSON file, with exact sequence probabilities.</summary>
    Tabular,
}

/// <summary>Facts about a loaded model that strategies, heads and reports need.</summary>
public sealed record ModelInfo
{
    public required ModelKind Kind { get; init; }

    /// <summary>Full path of the file the model was loaded from.</summary>
    public required string Path { get; init; }

    /// <summary>Number of token ids; logits rows have this many columns.</summary>
    public required int VocabularySize { get; init; }

    /// <summary>Beginning-of-sequence token, or null when the model has none.</summary>
    public required int? BosToken { get; init; }

    /// <summary>End-of-sequence token that finishes a response.</summary>
    public required int EosToken { get; init; }

    /// <summary>
    /// Tokens that end a response when generated: EOS, EOT when the model has one, and BOS, because a
    /// generated BOS opens a new document (llama2.c-style models such as stories260K end every story with
    /// BOS and never emit EOS). Defaults to EOS alone.
    /// </summary>
    public IReadOnlyList<int> StopTokens
    {
        get => field ?? [EosToken];
        init;
    }

    /// <summary>True when generating this token ends a response.</summary>
    public bool IsStop(int token)
    {
        foreach (int t in StopTokens) if (t == token) return true;
        return false;
    }

    /// <summary>Width of the final hidden state (the features value and reward heads read).</summary>
    public required int HiddenSize { get; init; }

    /// <summary>Context length the model was trained with (from its metadata).</summary>
    public required int TrainedContextSize { get; init; }

    /// <summary>
    /// "sha256:&lt;hex&gt;" of the model file's bytes. Trained heads store it so that they refuse a
    /// different model.
    /// </summary>
    public required string Fingerprint { get; init; }

    /// <summary>Short human-readable description (architecture, size, parameter count).</summary>
    public required string Description { get; init; }

    /// <summary>
    /// The chat template of the model's metadata (GGUF <c>tokenizer.chat_template</c>), or null when it has none.
    /// <see cref="ChatPrompt"/> applies it. Defaults to null.
    /// </summary>
    public string? ChatTemplate { get; init; }
}
