using Tilt.Engine.Models;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Where every engine sequence lives in llama.cpp's KV pool. Requests see stable logical ids; the scheduler alone decides
/// the physical id (llama.cpp's seq_id) behind each, and keeps the ids of the rows it decodes dense.
/// </summary>
/// <remarks>
/// Why: with the per-sequence KV layout (one KV stream per sequence), llama.cpp 815a2a5 splits a batch with
/// <c>split_equal(n_ubatch, sequential = true)</c>, which closes a micro-batch at every gap in the batch's sequence ids: each
/// run of consecutive ids becomes its own graph evaluation that reads all the weights again (measured in the C loop: ids
/// 0, 2, 4, ... instead of 0..31 cut throughput by 3-4x). So: free ids are handed out lowest physical id first, the decode's
/// rows are ordered by physical id (<see cref="StepBatch.Order"/>), and when the decoded ids fragment anyway (requests that
/// finish, early rejection freeing candidates, cancellations), <see cref="Compact"/> moves sequences into the holes with a
/// whole-sequence copy plus remove (the one KV move llama.cpp allows across streams). The mapping is a permutation of
/// 0..MaxSequences-1, so a move swaps a live sequence's physical place with a free one's; requests never notice.
/// </remarks>
internal sealed class SequencePlacement
{
    private readonly int[] _physical; // logical -> physical
    private readonly int[] _logical;  // physical -> logical
    private readonly bool[] _taken;   // logical id held by a request or the prompt cache
    private readonly bool[] _decoded; // scratch: physical ids in this iteration's decode

    public SequencePlacement(int capacity)
    {
        _physical = new int[capacity];
        _logical = new int[capacity];
        _taken = new bool[capacity];
        _decoded = new bool[capacity];
        for (int i = 0; i < capacity; i++) _physical[i] = _logical[i] = i;
        Free = capacity;
    }

    public int Capacity => _physical.Length;

    /// <summary>Ids nobody holds.</summary>
    public int Free { get; private set; }

    /// <summary>Sequences moved by <see cref="Compact"/> so far.</summary>
    public long Moves { get; private set; }

    public int Physical(int logical) => _physical[logical];

    /// <summary>Takes the free id with the lowest physical place (rows decoded together stay dense).</summary>
    public int Take()
    {
        for (int p = 0; p < _logical.Length; p++)
            if (!_taken[_logical[p]]) return Mark(_logical[p]);
        throw new InvalidOperationException("no free sequence");
    }

    /// <summary>Takes the free id with the highest physical place: for sequences that are held but not decoded (the prompt
    /// cache), so they stay out of the way of the decoded rows.</summary>
    public int TakeHighest()
    {
        for (int p = _logical.Length - 1; p >= 0; p--)
            if (!_taken[_logical[p]]) return Mark(_logical[p]);
        throw new InvalidOperationException("no free sequence");
    }

    /// <summary>Gives an id back; its KV must already be removed.</summary>
    public void Return(int logical)
    {
        if (!_taken[logical]) throw new InvalidOperationException($"sequence {logical} is not held");
        _taken[logical] = false;
        Free++;
    }

    /// <summary>Contiguous runs of ids in an ascending list of physical ids: llama.cpp's micro-batches for one decode.</summary>
    public static int Runs(ReadOnlySpan<int> ascending)
    {
        if (ascending.Length == 0) return 0;
        int runs = 1;
        for (int i = 1; i < ascending.Length; i++)
            if (ascending[i] != ascending[i - 1] + 1) runs++;
        return runs;
    }

    /// <summary>
    /// Makes the physical ids of <paramref name="decoded"/> (logical ids, distinct) one contiguous run: chooses the window of
    /// |decoded| physical ids that costs the fewest moves - each decoded sequence outside it moves in, each held sequence
    /// that is not decoded this time (a request admitted this iteration, a kept prefix, a prompt-cache entry) moves out to a
    /// free place above - and carries them out (KV copy + remove on <paramref name="kv"/>, which takes physical ids).
    /// Returns the number of sequences moved (0 when the ids are already one run or no window can be cleared). Each move
    /// copies one KV stream (llama.cpp applies the copy at the start of the next decode), so it pays for itself as soon as
    /// it saves one extra graph evaluation of the weights (docs/architecture.md, "Sequence ids").
    /// </summary>
    public int Compact(ReadOnlySpan<int> decoded, IDecodingSession kv)
    {
        int n = decoded.Length, capacity = _logical.Length;
        if (n < 2) return 0;
        Array.Clear(_decoded);
        int lowest = capacity, highest = -1;
        foreach (int s in decoded)
        {
            int p = _physical[s];
            _decoded[p] = true;
            lowest = Math.Min(lowest, p);
            highest = Math.Max(highest, p);
        }
        if (highest - lowest + 1 == n) return 0; // already one run

        // Sliding window [a, a + n): cost = decoded outside it + held-not-decoded inside it; feasible when the free places
        // outside it can take the held ones. The cheapest wins, the lowest on ties (decoded ids stay low, new ones go above).
        int free = Free;
        int bestStart = -1, bestCost = int.MaxValue, inside = 0, blocked = 0;
        for (int p = 0; p < capacity; p++)
        {
            if (_decoded[p]) inside++;
            else if (_taken[_logical[p]]) blocked++;
            int start = p - n + 1;
            if (start < 0) continue;
            int freeInside = n - inside - blocked;
            int cost = n - inside + blocked;
            if (free - freeInside >= blocked && cost < bestCost)
            {
                bestCost = cost;
                bestStart = start;
            }
            if (_decoded[start]) inside--;
            else if (_taken[_logical[start]]) blocked--;
        }
        if (bestStart < 0 || bestCost == 0) return 0;
        int end = bestStart + n;

        int moved = 0;
        // Held sequences inside the window make room first, to the highest free places outside it.
        for (int p = bestStart; p < end; p++)
        {
            if (_decoded[p] || !_taken[_logical[p]]) continue;
            int target = capacity - 1;
            while (target >= bestStart && target < end || _taken[_logical[target]]) target--; // feasible: checked above
            Move(p, target, kv);
            moved++;
        }
        // Then every decoded sequence outside the window moves into its free places, in order.
        int hole = bestStart;
        for (int p = 0; p < capacity; p++)
        {
            if (!_decoded[p] || (p >= bestStart && p < end)) continue;
            while (_taken[_logical[hole]]) hole++;
            Move(p, hole, kv);
            _decoded[hole] = true;
            moved++;
        }
        Moves += moved;
        return moved;
    }

    /// <summary>Moves the sequence at physical <paramref name="from"/> to the free physical place <paramref name="to"/>.</summary>
    private void Move(int from, int to, IDecodingSession kv)
    {
        kv.CopySequence(from, to);
        kv.RemoveSequence(from);
        int moving = _logical[from], free = _logical[to];
        _logical[to] = moving;
        _physical[moving] = to;
        _logical[from] = free;
        _physical[free] = from;
    }

    private int Mark(int logical)
    {
        _taken[logical] = true;
        Free--;
        return logical;
    }
}

/// <summary>
/// The engine's session as requests see it: logical sequence ids, translated to physical ones by the scheduler's
/// <see cref="SequencePlacement"/>. Output rows of the scheduler's decode are reached through <see cref="StepBatch.Row"/>.
/// </summary>
internal sealed class PlacedSession(IDecodingSession inner, SequencePlacement placement) : IDecodingSession
{
    private int[] _mapped = new int[placement.Capacity];

    public IDecodingSession Inner => inner;
    public int MaxSequences => inner.MaxSequences;
    public int MaxSequenceLength => inner.MaxSequenceLength;
    public int VocabularySize => inner.VocabularySize;
    public int HiddenSize => inner.HiddenSize;
    public int OutputRows => inner.OutputRows;
    public ReadOnlySpan<float> Logits => inner.Logits;
    public ReadOnlySpan<float> Hidden => inner.Hidden;

    public int Length(int sequence) => inner.Length(Map(sequence));

    public void Prefill(int sequence, ReadOnlySpan<int> tokens) => inner.Prefill(Map(sequence), tokens);

    /// <summary>Decodes in the given order (output row i is sequences[i]); the scheduler's batched decode goes through
    /// <see cref="StepBatch.Order"/> instead, which sorts the rows by physical id.</summary>
    public void Step(ReadOnlySpan<int> sequences, ReadOnlySpan<int> tokens)
    {
        if (_mapped.Length < sequences.Length) _mapped = new int[sequences.Length];
        for (int i = 0; i < sequences.Length; i++) _mapped[i] = Map(sequences[i]);
        inner.Step(_mapped.AsSpan(0, sequences.Length), tokens);
    }

    public void CopySequence(int source, int destination) => inner.CopySequence(Map(source), Map(destination));

    public void RemoveSequence(int sequence) => inner.RemoveSequence(Map(sequence));

    public void Dispose() => inner.Dispose();

    private int Map(int sequence)
    {
        SequenceSet.CheckSequence(sequence, placement.Capacity);
        return placement.Physical(sequence);
    }
}
