using Tilt.Engine.Statistics;

namespace Tilt.Engine.Tests.Statistics;

public sealed class BlockwiseKlTests
{
    [Fact]
    public void Bound_is_the_per_block_M7_bound_summed()
    {
        Assert.Equal(5 * (Math.Log(8.0) - 7.0 / 8.0), BlockwiseKl.Bound(8, 5), 1e-14);
        Assert.Equal(0.0, BlockwiseKl.Bound(1, 100));
        Assert.Equal(0.0, BlockwiseKl.Bound(8, 0));
        Assert.Equal(BestOfN.KlUpperBound(4) + BestOfN.KlUpperBound(2), BlockwiseKl.Bound([4, 2, 1]), 1e-15);
    }

    [Fact]
    public void One_block_is_best_of_n()
    {
        // [M18]: with one block covering the response, blockwise CD is best-of-K.
        Assert.Equal(KlEstimators.KlHatFromLogProbability(-3.2, 16), BlockwiseKl.Estimate([-3.2], 16));
        Assert.Equal(BestOfN.KlUpperBound(16), BlockwiseKl.Bound(16, 1));
        Assert.Equal(
            KlEstimators.KlHatFromLogProbability(-3.2, 16) + KlEstimators.KlHatFromLogProbability(-0.4, 3),
            BlockwiseKl.Estimate([-3.2, -0.4], [16, 3]), 1e-15);
    }

    [Fact]
    public void Exact_kl_of_two_block_decoding_obeys_the_chain_rule_and_the_bound()
    {
        // A tabular model of two blocks: block a ~ p1, then block b ~ p2(. | a); each block is chosen by
        // best-of-K under a block value. The joint KL, computed directly, must equal the chain-rule sum of
        // per-block best-of-K KLs, stay below 2 (log K - (K-1)/K) [M19], and the per-block [M9] estimate's
        // expectation must sit between the exact KL and the bound (the per-block relation of BestOfN.ExpectedKlHat).
        const int k = 4;
        var rng = new Random(77);
        for (int trial = 0; trial < 50; trial++)
        {
            var first = RandomOutcomes.Outcomes(RandomOutcomes.Draw(rng, 6));
            var firstBon = new BestOfN(first, k);
            var second = new BestOfN[first.Count];
            for (int a = 0; a < first.Count; a++)
            {
                second[a] = new BestOfN(RandomOutcomes.Outcomes(RandomOutcomes.Draw(rng, 5)), k);
            }

            double joint = 0.0, chain = firstBon.Kl, estimate = 0.0;
            for (int a = 0; a < first.Count; a++)
            {
                chain += firstBon.Probabilities[a] * second[a].Kl;
                var inner = second[a].Outcomes;
                for (int b = 0; b < inner.Count; b++)
                {
                    double pi = firstBon.Probabilities[a] * second[a].Probabilities[b];
                    if (pi == 0.0)
                    {
                        continue;
                    }

                    double p = first.Probabilities[a] * inner.Probabilities[b];
                    joint += pi * Math.Log(pi / p);
                    estimate += pi * BlockwiseKl.Estimate([Math.Log(first.Probabilities[a]), Math.Log(inner.Probabilities[b])], k);
                }
            }

            Assert.Equal(chain, joint, 1e-12);
            Assert.True(joint <= BlockwiseKl.Bound(k, 2) + 1e-12);
            Assert.True(joint <= estimate + 1e-12 && estimate <= BlockwiseKl.Bound(k, 2) + 1e-12, $"trial {trial}");
        }
    }

    [Fact]
    public void Bad_inputs_throw_argument_exceptions_naming_the_parameter_and_value()
    {
        BestOfNTests.AssertArgument(() => BlockwiseKl.Bound(0, 3), "candidatesPerBlock", "0");
        BestOfNTests.AssertArgument(() => BlockwiseKl.Bound(4, -1), "blockCount", "-1");
        BestOfNTests.AssertArgument(() => BlockwiseKl.Bound([4, 0]), "candidatesPerBlock", "0");
        BestOfNTests.AssertArgument(() => BlockwiseKl.Estimate([-1.0, 0.5], 4), "blockLogProbabilities", "0.5");
        BestOfNTests.AssertArgument(() => BlockwiseKl.Estimate([-1.0, double.NaN], 4), "blockLogProbabilities", "NaN");
        BestOfNTests.AssertArgument(() => BlockwiseKl.Estimate([-1.0], [4, 4]), "candidatesPerBlock", "2");
    }
}
