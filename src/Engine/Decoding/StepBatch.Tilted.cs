using Tilt.Kernels;

namespace Tilt.Engine.Decoding;

/// <summary>Token-wise CD rows [M14]: grouped by candidate-set size, one fused tilted call per group.</summary>
internal sealed partial class StepBatch
{
    /// <summary>
    /// Queues a token-wise CD row [M14]: the prefix's logits, its candidate tokens and their values V(prefix + z).
    /// Returns a handle for <see cref="TiltResult"/>.
    /// </summary>
    public (int Group, int Row) AddTilted(ReadOnlySpan<float> logits, ReadOnlySpan<int> candidateIds, ReadOnlySpan<float> values,
        float beta, SamplingParameters parameters, RngKey key)
    {
        int c = candidateIds.Length;
        if (!_tiltGroups.TryGetValue(c, out var group)) _tiltGroups[c] = group = new TiltGroup(c, _vocab);
        int row = group.Add(logits[.._vocab], candidateIds, values, beta, parameters, key);
        return (c, row);
    }

    /// <summary>Token, log p, log pi and the exact per-step KL [M15] of a token-wise row after <see cref="Sample"/>.</summary>
    public (int Token, float BaseLogProb, float TiltedLogProb, float Kl) TiltResult((int Group, int Row) handle)
    {
        var g = _tiltGroups[handle.Group];
        return (g.Tokens[handle.Row], g.BaseLogProb[handle.Row], g.TiltedLogProb[handle.Row], g.Kl[handle.Row]);
    }

    /// <summary>Token-wise rows that share one candidate-set size: [rows, vocab] logits, [rows, c] ids and values.</summary>
    private sealed class TiltGroup(int candidates, int vocab)
    {
        public readonly int Candidates = candidates;
        public int Count;
        public float[] Logits = [];
        public int[] CandidateIds = [];
        public float[] Values = [];
        public float[] Beta = [];
        public SamplingParameters[] Parameters = [];
        public RngKey[] Keys = [];
        public int[] Tokens = [];
        public float[] BaseLogProb = [];
        public float[] TiltedLogProb = [];
        public float[] Kl = [];

        public int Add(ReadOnlySpan<float> logits, ReadOnlySpan<int> ids, ReadOnlySpan<float> values, float beta, SamplingParameters parameters, RngKey key)
        {
            if (Count == Beta.Length)
            {
                int n = Math.Max(4, Count * 2);
                Array.Resize(ref Logits, n * vocab);
                Array.Resize(ref CandidateIds, n * Candidates);
                Array.Resize(ref Values, n * Candidates);
                Array.Resize(ref Beta, n);
                Array.Resize(ref Parameters, n);
                Array.Resize(ref Keys, n);
                Array.Resize(ref Tokens, n);
                Array.Resize(ref BaseLogProb, n);
                Array.Resize(ref TiltedLogProb, n);
                Array.Resize(ref Kl, n);
            }
            logits.CopyTo(Logits.AsSpan(Count * vocab, vocab));
            ids.CopyTo(CandidateIds.AsSpan(Count * Candidates, Candidates));
            values.CopyTo(Values.AsSpan(Count * Candidates, Candidates));
            Beta[Count] = beta;
            Parameters[Count] = parameters;
            Keys[Count] = key;
            return Count++;
        }
    }
}
