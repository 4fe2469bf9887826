namespace Tilt.Kernels;

/// <summary>
/// The top-N pass behind per-token log-probabilities: for chosen rows of a logits matrix, the N most likely tokens under
/// softmax at temperature 1 over the full vocabulary and their log-probabilities in float64 (log-softmax with the row max
/// subtracted first, so no exp overflows). Most likely first; equal logits keep the lower token id first. One definition
/// for every backend (the ILGPU backend runs it on the host: the pass is O(vocab) per asking row and reads the same host
/// logits the sampler was given), and the scalar reference the tests compare against a sort of the whole row.
/// </summary>
public static class TopLogProbs
{
    /// <summary>Largest N a request may ask for.</summary>
    public const int MaxN = 20;

    /// <summary>
    /// For each row in <paramref name="rows"/>: the <paramref name="n"/> most likely tokens of that row of
    /// <paramref name="logits"/> and their log-probabilities. Tokens with a -inf logit are never listed: a row with fewer
    /// than n possible tokens has its remaining slots set to id -1 and log-probability -inf.
    /// </summary>
    /// <param name="logits">[rowsInMatrix, vocab] raw logits.</param>
    /// <param name="vocab">Vocabulary size, &gt;= 1.</param>
    /// <param name="rows">[k] the rows of the matrix to scan.</param>
    /// <param name="n">Tokens per row, 1..<see cref="MaxN"/>.</param>
    /// <param name="ids">[k, n] out: token ids, most likely first.</param>
    /// <param name="logProbs">[k, n] out: their log p at T = 1.</param>
    /// <param name="tokens">[k] optional: a token per row whose log p is wanted as well (teacher forcing: the given next
    /// token, which need not be among the top n); -1 = none. Empty = no row has one.</param>
    /// <param name="tokenLogProbs">[k] out with <paramref name="tokens"/>: log p of each row's token (NaN for -1).</param>
    public static void Compute(ReadOnlySpan<float> logits, int vocab, ReadOnlySpan<int> rows, int n, Span<int> ids, Span<double> logProbs,
        ReadOnlySpan<int> tokens = default, Span<double> tokenLogProbs = default)
    {
        if (!tokens.IsEmpty && (tokens.Length < rows.Length || tokenLogProbs.Length < rows.Length))
            throw new ArgumentException($"tokens ({tokens.Length}) and tokenLogProbs ({tokenLogProbs.Length}) need an entry per row ({rows.Length})", nameof(tokens));
        if (vocab < 1) throw new ArgumentOutOfRangeException(nameof(vocab), vocab, "vocab must be at least 1");
        if (n is < 1 or > MaxN) throw new ArgumentOutOfRangeException(nameof(n), n, $"n must be 1..{MaxN}");
        if (ids.Length < rows.Length * n) throw new ArgumentException($"ids holds {ids.Length} entries; {rows.Length} rows x {n} need {rows.Length * n}", nameof(ids));
        if (logProbs.Length < rows.Length * n) throw new ArgumentException($"logProbs holds {logProbs.Length} entries; {rows.Length} rows x {n} need {rows.Length * n}", nameof(logProbs));
        int matrixRows = logits.Length / vocab;
        for (int r = 0; r < rows.Length; r++)
        {
            int row = rows[r];
            if ((uint)row >= (uint)matrixRows) throw new ArgumentOutOfRangeException(nameof(rows), row, $"row {row} is outside the {matrixRows} rows of logits");
            double logZ = Row(logits.Slice(row * vocab, vocab), ids.Slice(r * n, n), logProbs.Slice(r * n, n));
            if (tokens.IsEmpty) continue;
            int token = tokens[r];
            if (token >= vocab) throw new ArgumentOutOfRangeException(nameof(tokens), token, $"token {token} is outside the vocabulary of {vocab}");
            tokenLogProbs[r] = token < 0 ? double.NaN : logits[row * vocab + token] - logZ;
        }
    }

    /// <summary>One row: a bounded insertion list of the n largest logits (ids ascending, so a tie keeps the lower id), then log-softmax.</summary>
    private static double Row(ReadOnlySpan<float> row, Span<int> ids, Span<double> logProbs)
    {
        int n = ids.Length, count = 0;
        Span<float> best = stackalloc float[MaxN];
        float max = float.NegativeInfinity;
        for (int t = 0; t < row.Length; t++)
        {
            float x = row[t];
            if (x > max) max = x;
            if (x == float.NegativeInfinity || (count == n && x <= best[n - 1])) continue;
            int at = count < n ? count : n - 1;
            while (at > 0 && best[at - 1] < x)
            {
                if (at < n)
                {
                    best[at] = best[at - 1];
                    ids[at] = ids[at - 1];
                }
                at--;
            }
            best[at] = x;
            ids[at] = t;
            if (count < n) count++;
        }
        if (float.IsNaN(max) || float.IsPositiveInfinity(max)) throw new ArgumentException($"the row holds a non-finite logit ({max})");
        double sum = 0;
        for (int t = 0; t < row.Length; t++) sum += Math.Exp((double)row[t] - max);
        double logZ = max + Math.Log(sum);
        for (int i = 0; i < n; i++)
        {
            if (i < count)
            {
                logProbs[i] = best[i] - logZ;
            }
            else
            {
                ids[i] = -1;
                logProbs[i] = double.NegativeInfinity;
            }
        }
        return logZ;
    }
}
