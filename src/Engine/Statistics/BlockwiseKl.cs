namespace Tilt.Engine.Statistics;

/// <summary>
/// KL of blockwise controlled decoding [M18]-[M19]: every block is a best-of-K choice among K candidate
/// blocks drawn from p given the prefix, so by the chain rule the sequence KL is the sum of per-block KLs,
/// each at most log K - (K-1)/K [M7] and each estimable by KLhat [M9] with eps = p(block | prefix).
/// </summary>
public static class BlockwiseKl
{
    /// <summary>Upper bound on the sequence KL after <paramref name="blockCount"/> blocks of K candidates each.</summary>
    public static double Bound(int candidatesPerBlock, int blockCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(candidatesPerBlock, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(blockCount);
        return blockCount * BestOfN.KlUpperBound(candidatesPerBlock);
    }

    /// <summary>Upper bound on the sequence KL when the number of candidates varies by block (e.g. fewer still alive near EOS).</summary>
    public static double Bound(ReadOnlySpan<int> candidatesPerBlock)
    {
        double sum = 0.0;
        for (int b = 0; b < candidatesPerBlock.Length; b++)
        {
            if (candidatesPerBlock[b] < 1)
            {
                throw new ArgumentException($"candidatesPerBlock[{b}] = {candidatesPerBlock[b]} is below 1.", nameof(candidatesPerBlock));
            }

            sum += BestOfN.KlUpperBound(candidatesPerBlock[b]);
        }

        return sum;
    }

    /// <summary>
    /// Per-block [M9] estimate of one sequence's KL: the sum over its blocks of KLhat(log p(block | prefix), K).
    /// </summary>
    /// <param name="blockLogProbabilities">log p(block | prefix) of each chosen block, in order.</param>
    /// <param name="candidatesPerBlock">K, the same for every block.</param>
    /// <remarks>Average this over sequences (e.g. with <see cref="KlEstimate.FromSamples"/>) for a KL estimate with an error bar.</remarks>
    public static double Estimate(ReadOnlySpan<double> blockLogProbabilities, int candidatesPerBlock)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(candidatesPerBlock, 1);
        var sum = new CompensatedSum();
        for (int b = 0; b < blockLogProbabilities.Length; b++)
        {
            sum.Add(KlHat(blockLogProbabilities[b], candidatesPerBlock, b));
        }

        return sum.Value;
    }

    /// <summary>Per-block [M9] estimate with a per-block number of candidates.</summary>
    public static double Estimate(ReadOnlySpan<double> blockLogProbabilities, ReadOnlySpan<int> candidatesPerBlock)
    {
        if (candidatesPerBlock.Length != blockLogProbabilities.Length)
        {
            throw new ArgumentException(
                $"candidatesPerBlock has {candidatesPerBlock.Length} entries but blockLogProbabilities has {blockLogProbabilities.Length}.",
                nameof(candidatesPerBlock));
        }

        var sum = new CompensatedSum();
        for (int b = 0; b < blockLogProbabilities.Length; b++)
        {
            if (candidatesPerBlock[b] < 1)
            {
                throw new ArgumentException($"candidatesPerBlock[{b}] = {candidatesPerBlock[b]} is below 1.", nameof(candidatesPerBlock));
            }

            sum.Add(KlHat(blockLogProbabilities[b], candidatesPerBlock[b], b));
        }

        return sum.Value;
    }

    private static double KlHat(double logProbability, int candidates, int block)
    {
        if (double.IsNaN(logProbability) || logProbability > KlEstimators.LogProbabilityRoundingTolerance)
        {
            throw new ArgumentException(
                $"blockLogProbabilities[{block}] = {ProbabilityVector.Format(logProbability)} is not a log-probability (<= 0).",
                "blockLogProbabilities");
        }

        return KlEstimators.KlHatFromLogProbability(logProbability, candidates);
    }
}
