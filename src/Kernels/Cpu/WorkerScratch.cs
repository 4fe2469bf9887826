namespace Tilt.Kernels.Cpu;

/// <summary>Per-worker scratch of the CPU backend. Grows only when a larger shape arrives.</summary>
internal sealed class WorkerScratch
{
    private ulong[] _keys = new ulong[1024];
    private float[] _scores = new float[1024];
    private ulong[] _seen = new ulong[64];

    public Span<ulong> Keys(int length)
    {
        if (_keys.Length < length)
            _keys = new ulong[Math.Max(length, _keys.Length * 2)];
        return _keys.AsSpan(0, length);
    }

    public Span<float> Scores(int length)
    {
        if (_scores.Length < length)
            _scores = new float[Math.Max(length, _scores.Length * 2)];
        return _scores.AsSpan(0, length);
    }

    /// <summary>Throws unless every id is in [0, vocab) and no id repeats (a bitmap, cleared again afterwards).</summary>
    public void CheckCandidates(ReadOnlySpan<int> ids, int vocab, int row)
    {
        int words = (vocab + 63) >> 6;
        if (_seen.Length < words)
            _seen = new ulong[Math.Max(words, _seen.Length * 2)];
        int bad = -1;
        string? why = null;
        int j = 0;
        for (; j < ids.Length; j++)
        {
            int id = ids[j];
            if ((uint)id >= (uint)vocab)
            {
                (bad, why) = (j, $"is {id}, outside [0, {vocab})");
                break;
            }
            ulong bit = 1UL << (id & 63);
            if ((_seen[id >> 6] & bit) != 0)
            {
                (bad, why) = (j, $"repeats token {id}");
                break;
            }
            _seen[id >> 6] |= bit;
        }
        for (int i = 0; i < j; i++)
            _seen[ids[i] >> 6] = 0;
        if (why is not null)
            throw new ArgumentException($"candidateIds row {row}, position {bad}, {why}.", "candidateIds");
    }

    /// <summary>
    /// Top-k then top-p (nucleus over the renormalized top-k set) over tempered, tilted scores s (max = sMax).
    /// Returns the survivors as sort keys, best first. k = 0 means no top-k; p = 1 means no top-p.
    /// </summary>
    public ReadOnlySpan<ulong> Filter(ReadOnlySpan<float> s, ReadOnlySpan<int> ids, float sMax, int k, float p)
    {
        if (k > 0 && k < s.Length)
        {
            Span<ulong> heap = Keys(k);
            int n = RowMath.TopK(s, ids, k, heap);
            ReadOnlySpan<ulong> top = heap[..n];
            if (p >= 1f)
                return top;
            int len = RowMath.NucleusLength(top, p, RowMath.SumExpSorted(top));
            return len > 0 ? top[..len] : top;
        }
        if (p >= 1f)
        {
            Span<ulong> all = Keys(s.Length);
            int n = RowMath.Collect(s, ids, float.MinValue, all);
            all[..n].Sort();
            return all[..n];
        }
        return Nucleus(s, ids, sMax, p);
    }

    // Nucleus without sorting the whole row: candidates more than delta below the max carry at most n e^-delta / Z of
    // the mass, so with delta = ln(n / (Z (1 - p))) the nucleus lies among the candidates above max - delta. Only those
    // are collected and sorted; if rounding makes the prefix fall short, delta grows.
    private ReadOnlySpan<ulong> Nucleus(ReadOnlySpan<float> s, ReadOnlySpan<int> ids, float sMax, float p)
    {
        double z = RowMath.SumExpDouble(s, sMax);
        double delta = Math.Max(1.0, Math.Log(s.Length / (z * (1.0 - p))) + 1.0);
        Span<ulong> keys = Keys(s.Length);
        int finite = -1;
        while (true)
        {
            int n = RowMath.Collect(s, ids, (float)(sMax - delta), keys);
            Span<ulong> cand = keys[..n];
            cand.Sort();
            int len = RowMath.NucleusLength(cand, p, z);
            if (len > 0)
                return cand[..len];
            if (finite < 0)
                finite = RowMath.CountFinite(s);
            if (n >= finite)
                return cand;
            delta = delta * 2 + 4;
        }
    }
}
