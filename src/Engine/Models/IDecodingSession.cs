namespace Tilt.Engine.Models;

/// <summary>
/// A batched decoding session over one model: prefill a prompt once, fork its KV cache to K sequences,
/// then decode one token for every active sequence per <see cref="Step"/> in a single forward pass.
/// After each <see cref="Prefill"/> or <see cref="Step"/> the session exposes, for each output row, the
/// next-token logits and the final hidden state computed by that same pass.
/// Not thread-safe: one caller at a time.
/// </summary>
public interface IDecodingSession : IDisposable
{
    /// <summary>Sequences the session can hold (sequence ids are 0..MaxSequences-1).</summary>
    int MaxSequences { get; }

    /// <summary>Tokens one sequence can hold (prompt included).</summary>
    int MaxSequenceLength { get; }

    int VocabularySize { get; }

    int HiddenSize { get; }

    /// <summary>Rows in <see cref="Logits"/> and <see cref="Hidden"/> from the last pass.</summary>
    int OutputRows { get; }

    /// <summary>
    /// [OutputRows, VocabularySize] row-major next-token logits of the last pass. Valid only until the
    /// next Prefill or Step: copy what must outlive it.
    /// </summary>
    ReadOnlySpan<float> Logits { get; }

    /// <summary>[OutputRows, HiddenSize] row-major final hidden states (after the last norm) of the last pass.</summary>
    ReadOnlySpan<float> Hidden { get; }

    /// <summary>Tokens currently held by a sequence.</summary>
    int Length(int sequence);

    /// <summary>
    /// Decodes a prompt into an empty sequence. Afterwards there is one output row: the logits and
    /// hidden state after the last prompt token.
    /// </summary>
    void Prefill(int sequence, ReadOnlySpan<int> tokens);

    /// <summary>
    /// Appends tokens[i] to sequences[i] for every i in ONE forward pass. Output row i belongs to
    /// sequences[i]. A sequence may appear at most once.
    /// </summary>
    void Step(ReadOnlySpan<int> sequences, ReadOnlySpan<int> tokens);

    /// <summary>Replaces destination's cache with a copy of source's (a fork, or moving a block winner).</summary>
    void CopySequence(int source, int destination);

    /// <summary>Drops a sequence's cache; the id can be reused.</summary>
    void RemoveSequence(int sequence);
}
