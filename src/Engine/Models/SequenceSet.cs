namespace Tilt.Engine.Models;

/// <summary>Argument checks shared by the session implementations.</summary>
internal static class SequenceSet
{
    /// <summary>Throws unless every id is in 0..maxSequences-1 and none repeats. Allocates nothing (K &lt;= 256).</summary>
    public static void CheckDistinct(ReadOnlySpan<int> sequences, int maxSequences)
    {
        Span<ulong> seen = stackalloc ulong[(maxSequences + 63) >> 6];
        seen.Clear();
        foreach (int s in sequences)
        {
            if ((uint)s >= (uint)maxSequences)
                throw new ArgumentOutOfRangeException(nameof(sequences), s, $"sequence ids are 0..{maxSequences - 1}");
            ulong bit = 1UL << (s & 63);
            if ((seen[s >> 6] & bit) != 0)
                throw new ArgumentException($"sequence {s} appears twice in one step", nameof(sequences));
            seen[s >> 6] |= bit;
        }
    }

    public static void CheckSequence(int sequence, int maxSequences)
    {
        if ((uint)sequence >= (uint)maxSequences)
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence, $"sequence ids are 0..{maxSequences - 1}");
    }

    public static void CheckTokens(ReadOnlySpan<int> tokens, int vocabularySize)
    {
        foreach (int t in tokens)
            if ((uint)t >= (uint)vocabularySize)
                throw new ArgumentOutOfRangeException(nameof(tokens), t, $"token id outside the vocabulary (0..{vocabularySize - 1})");
    }
}
