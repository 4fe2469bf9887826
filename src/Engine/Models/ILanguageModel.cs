using Tilt.Engine.Text;

namespace Tilt.Engine.Models;

/// <summary>
/// A base model p(y|x): a tokenizer plus batched decoding sessions that give, for every decoded token,
/// the next-token logits and the final hidden state from the same forward pass.
/// Implementations: <see cref="Gguf.GgufModel"/> (llama.cpp) and <see cref="Tabular.TabularModel"/>
/// (an exact Markov model for tests and teaching).
/// </summary>
public interface ILanguageModel : IDisposable
{
    ModelInfo Info { get; }

    /// <summary>Turns a prompt into token ids (with BOS first when the model wants one).</summary>
    int[] Tokenize(string text, bool addBos = true);

    /// <summary>A fresh streaming detokenizer (it holds incomplete UTF-8 sequences between tokens).</summary>
    ITextDecoder CreateTextDecoder();

    /// <summary>Detokenizes a whole token sequence.</summary>
    string Detokenize(ReadOnlySpan<int> tokens);

    /// <summary>Opens a batched decoding session sized for the given options.</summary>
    IDecodingSession CreateSession(SessionOptions options);
}
