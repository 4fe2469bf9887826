using Tilt.Engine.Models;

namespace Tilt.Engine.Training;

/// <summary>Prefill a prompt once and fork it: the start of every batched strategy.</summary>
internal static class PromptFork
{
    /// <summary>
    /// Prefills <paramref name="promptTokens"/> into sequence 0 and copies its KV cache to sequences
    /// 1..k-1. Returns the prompt's next-token logits and hidden state replicated per candidate:
    /// [k, vocab] and [k, d].
    /// </summary>
    public static (float[] Logits, float[] Hidden) PrefillAndFork(IDecodingSession session, int[] promptTokens, int k)
    {
        session.Prefill(0, promptTokens);
        int vocab = session.VocabularySize, d = session.HiddenSize;
        var logits = new float[k * vocab];
        var hidden = new float[k * d];
        for (int i = 0; i < k; i++)
        {
            session.Logits.CopyTo(logits.AsSpan(i * vocab, vocab));
            session.Hidden.CopyTo(hidden.AsSpan(i * d, d));
        }
        for (int i = 1; i < k; i++) session.CopySequence(0, i);
        return (logits, hidden);
    }
}
