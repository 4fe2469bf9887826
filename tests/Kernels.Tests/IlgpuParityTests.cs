using Tilt.Kernels;

namespace Tilt.Kernels.Tests;

/// <summary>
/// The ILGPU kernels against the float64 reference and the SIMD CPU backend. Without TILT_REQUIRE_CUDA they run on
/// ILGPU's CPU accelerator (small shapes: it simulates a GPU with threads); with TILT_REQUIRE_CUDA=1 they run on the
/// first CUDA device and FAIL if there is none (see tests/Kernels.Tests/cuda-parity.sh).
/// </summary>
[Collection(IlgpuCollection.Name)]
public class IlgpuParityTests(IlgpuFixture fixture)
{
    private readonly IStepKernels _gpu = fixture.Kernels;
    private readonly int _scale = fixture.IsCuda ? 8 : 1;

    public static TheoryData<int, int, int, bool> Shapes => new()
    {
        { 1, 1, 1, false }, { 3, 7, 7, true }, { 5, 33, 33, false }, { 4, 40, 9, true }, { 6, 100, 100, true }, { 3, 257, 31, true },
        { 2, 600, 600, true },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void TiltedStepMatchesReferenceAndCpu(int rows, int vocab, int candidates, bool tilt)
    {
        var rng = new Random(rows * 131 + vocab * 17 + candidates);
        rows *= _scale;
        var c = TiltedStepTests.Random(rng, rows, vocab, candidates, tilt);
        var gpu = TiltedStepTests.Run(_gpu, c);
        TiltedStepTests.AssertMatchesReference(c, gpu);
        using var cpu = Backends.Create(Backends.Cpu);
        var want = TiltedStepTests.Run(cpu, c);
        Assert.Equal(want.Tokens, gpu.Tokens);
        for (int r = 0; r < rows; r++)
        {
            // Both are within 2e-5 of float64; against each other the same bound applies.
            TiltedStepTests.AssertClose(want.Base[r], gpu.Base[r], $"row {r} base");
            TiltedStepTests.AssertClose(want.Tilted[r], gpu.Tilted[r], $"row {r} tilted");
            TiltedStepTests.AssertClose(want.Kl[r], gpu.Kl[r], $"row {r} kl", 3e-5);
        }
    }

    [Theory]
    [InlineData(2, 65, false, false)]
    [InlineData(3, 300, true, false)]
    [InlineData(6, 333, false, true)]
    public void SampleBaseMatchesReference(int rows, int vocab, bool extreme, bool ties)
    {
        var rng = new Random(rows + vocab);
        rows *= _scale;
        var logits = TestData.Logits(rng, rows, vocab, extreme: extreme, ties: ties, scale: ties ? 1.5f : 3f);
        var (p, keys) = SampleBaseTests.Rows(rng, rows);
        SampleBaseTests.AssertMatchesReference(logits, rows, vocab, p, keys, SampleBaseTests.Run(_gpu, logits, rows, vocab, p, keys));
    }

    [Fact]
    public void NoiseIsBitIdenticalToTheCpu()
    {
        var device = (Tilt.Kernels.Ilgpu.IlgpuStepKernels)_gpu;
        var got = new float[_scale * 1000 + 17];
        var key = new RngKey(0xDEADBEEF12345678, 3, 9, 27);
        device.Noise(key, got);
        for (int c = 0; c < got.Length; c++)
            Assert.Equal(BitConverter.SingleToInt32Bits(GumbelNoise.Sample(key, c, got.Length)), BitConverter.SingleToInt32Bits(got[c]));
    }

    [Fact]
    public void RejectsNaNAndMaskedRowsLikeTheCpuBackend()
    {
        var logits = new float[3 * 20];
        logits[2 * 20 + 5] = float.NaN;
        var p = Enumerable.Repeat(new SamplingParameters(), 3).ToArray();
        var e = Assert.Throws<ArgumentException>(() => SampleBaseTests.Run(_gpu, logits, 3, 20, p, new RngKey[3]));
        Assert.Contains("logits row 2 contains NaN (at index 5)", e.Message);
        Array.Fill(logits, float.NegativeInfinity, 20, 20);
        logits[2 * 20 + 5] = 0f;
        Assert.Contains("row 1 is entirely masked", Assert.Throws<ArgumentException>(() => SampleBaseTests.Run(_gpu, logits, 3, 20, p, new RngKey[3])).Message);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(5, 33, 4)]
    [InlineData(9, 200, 16)]
    public void ValueHeadsMatchReferenceAndCpu(int rows, int d, int units)
    {
        var rng = new Random(rows * 7 + d);
        rows *= _scale;
        var hidden = ValueHeadTests.RandomArray(rng, rows * d);
        var lin = new LinearValueHead(ValueHeadTests.RandomArray(rng, d), 0.3f);
        ValueHead[] heads = [lin, ValueHeadTests.Mlp(rng, d, units, HeadActivation.Relu), ValueHeadTests.Mlp(rng, d, units, HeadActivation.Gelu)];
        foreach (var head in heads)
        {
            var got = new float[rows];
            _gpu.ScoreValues(head, hidden, rows, got);
            ValueHeadTests.AssertClose(ValueHeadTests.Reference(head, hidden, rows), got, head.GetType().Name);
        }
        var multi = new MultiObjectiveValueHead(heads);
        var weights = ValueHeadTests.RandomArray(rng, rows * 3);
        var gpuMulti = new float[rows];
        var cpuMulti = new float[rows];
        _gpu.ScoreValues(multi, hidden, rows, weights, gpuMulti);
        using var cpu = Backends.Create(Backends.Cpu);
        cpu.ScoreValues(multi, hidden, rows, weights, cpuMulti);
        for (int r = 0; r < rows; r++)
            Assert.True(Math.Abs(gpuMulti[r] - cpuMulti[r]) <= 1e-4 * (1 + Math.Abs(cpuMulti[r])), $"row {r}: {gpuMulti[r]} vs {cpuMulti[r]}");
    }
}
