using Tilt.Engine.Decoding;
using Tilt.Kernels;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>
/// Base sampling reads llama.cpp's logits buffer in place when the samples are exactly the decode's rows (issue 22,
/// "rows without copies"); the tokens must be those of the copying path, row for row, whatever order the rows were queued in.
/// </summary>
public sealed class StepBatchTests
{
    private const int Vocab = 97;

    private static float[] Logits(int rows, int seed)
    {
        var random = new Random(seed);
        var logits = new float[rows * Vocab];
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)(random.NextDouble() * 8 - 4);
        return logits;
    }

    private static (int Token, float Base, float Sampler)[] Run(float[] decode, int[] order, bool asRows, out bool inPlace)
    {
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        var batch = new StepBatch(Vocab, 4, 2);
        var handles = new int[order.Length];
        var parameters = new[] { new SamplingParameters(), new SamplingParameters(0.7f, 20, 0.9f), SamplingParameters.Greedy };
        foreach (int row in order)
        {
            var key = new RngKey(42, 7, 3, (uint)row);
            var p = parameters[row % parameters.Length];
            handles[row] = asRows ? batch.AddSampleRow(row, p, key) : batch.AddSample(decode.AsSpan(row * Vocab, Vocab), p, key);
        }
        batch.Sample(kernels, decode);
        inPlace = batch.SampledInPlace;
        return handles.Select(h => (batch.SampledToken(h), batch.SampledBaseLogProb(h), batch.SampledSamplerLogProb(h))).ToArray();
    }

    [Theory]
    [InlineData(new[] { 0, 1, 2, 3, 4, 5 })]
    [InlineData(new[] { 5, 3, 1, 0, 2, 4 })]
    public void Rows_sampled_in_place_equal_copied_rows(int[] order)
    {
        var decode = Logits(order.Length, 1);
        var copied = Run(decode, order, asRows: false, out bool copiedInPlace);
        var inPlace = Run(decode, order, asRows: true, out bool rowsInPlace);
        Assert.False(copiedInPlace);
        Assert.True(rowsInPlace);
        Assert.Equal(copied, inPlace);
        // The rows differ, so the test would notice a handle mapped to the wrong row.
        Assert.True(copied.Select(c => c.Token).Distinct().Count() > 1);
    }

    [Fact]
    public void A_subset_of_the_decode_rows_is_gathered_not_read_in_place()
    {
        var decode = Logits(6, 2);
        int[] order = [4, 1, 3];
        using var kernels = StepKernels.Create(KernelBackend.Cpu);
        var gathered = new StepBatch(Vocab, 4, 2);
        var copied = new StepBatch(Vocab, 4, 2);
        var a = order.Select(r => gathered.AddSampleRow(r, new SamplingParameters(), new RngKey(1, 2, 3, (uint)r))).ToArray();
        var b = order.Select(r => copied.AddSample(decode.AsSpan(r * Vocab, Vocab), new SamplingParameters(), new RngKey(1, 2, 3, (uint)r))).ToArray();
        gathered.Sample(kernels, decode);
        copied.Sample(kernels, decode);
        Assert.False(gathered.SampledInPlace);
        Assert.Equal(b.Select(copied.SampledToken), a.Select(gathered.SampledToken));
        Assert.Equal(b.Select(copied.SampledBaseLogProb), a.Select(gathered.SampledBaseLogProb));
    }
}
