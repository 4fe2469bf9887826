namespace Tilt.Engine.Decoding;

/// <summary>The candidate tokens of a token-wise CD step: the k most likely tokens of p.</summary>
internal static class CandidateSet
{
    /// <summary>
    /// Writes the ids of the (at most) <paramref name="k"/> highest finite logits into <paramref name="ids"/>,
    /// highest first (ties: lower id first), and returns how many there are. Tokens with -inf logits are
    /// impossible under p and never candidates. O(V log k) with a small min-heap.
    /// </summary>
    public static int TopK(ReadOnlySpan<float> logits, int k, Span<int> ids)
    {
        // Min-heap of (logit, id) ordered so the root is the weakest kept candidate.
        int count = 0;
        for (int t = 0; t < logits.Length; t++)
        {
            float v = logits[t];
            if (float.IsNegativeInfinity(v)) continue;
            if (count < k)
            {
                ids[count] = t;
                SiftUp(logits, ids, count++);
            }
            else if (Weaker(logits, ids[0], t))
            {
                ids[0] = t;
                SiftDown(logits, ids, count);
            }
        }
        // Heap-sort into descending strength.
        for (int end = count - 1; end > 0; end--)
        {
            (ids[0], ids[end]) = (ids[end], ids[0]);
            SiftDown(logits, ids, end);
        }
        return count;
    }

    /// <summary>True when a is weaker than b: lower logit, or equal logit and higher id.</summary>
    private static bool Weaker(ReadOnlySpan<float> logits, int a, int b) =>
        logits[a] < logits[b] || (logits[a] == logits[b] && a > b);

    private static void SiftUp(ReadOnlySpan<float> logits, Span<int> heap, int i)
    {
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Weaker(logits, heap[i], heap[parent])) break;
            (heap[i], heap[parent]) = (heap[parent], heap[i]);
            i = parent;
        }
    }

    private static void SiftDown(ReadOnlySpan<float> logits, Span<int> heap, int count)
    {
        int i = 0;
        while (true)
        {
            int l = 2 * i + 1, r = l + 1, weakest = i;
            if (l < count && Weaker(logits, heap[l], heap[weakest])) weakest = l;
            if (r < count && Weaker(logits, heap[r], heap[weakest])) weakest = r;
            if (weakest == i) return;
            (heap[i], heap[weakest]) = (heap[weakest], heap[i]);
            i = weakest;
        }
    }
}
