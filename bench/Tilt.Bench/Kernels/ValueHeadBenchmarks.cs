using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using Tilt.Kernels;

namespace Tilt.Bench.Kernels;

/// <summary>
/// Value heads on the SIMD CPU backend for K hidden states of width d. ReadHidden (one pass over [K, d]) is the
/// baseline; the MLP also reads its [256, d] first layer, so its floor is higher than 1 where K is small.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 5)]
public class ValueHeadBenchmarks
{
    private IStepKernels _kernels = null!;
    private float[] _hidden = null!; // [K, d]
    private float[] _values = null!; // [K]
    private LinearValueHead _linear = null!;
    private MlpValueHead _mlp = null!;

    [Params(1, 16, 64, 256)]
    public int K { get; set; }

    [Params(64, 768, 4096)]
    public int D { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(7);
        float[] Random(int n, float scale) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
        _kernels = StepKernels.Create(KernelBackend.Cpu);
        _hidden = Random(K * D, 1f);
        _values = new float[K];
        _linear = new LinearValueHead(Random(D, 1f / MathF.Sqrt(D)), 0.1f);
        _mlp = new MlpValueHead(Random(256 * D, 1f / MathF.Sqrt(D)), Random(256, 0.1f), Random(256, 1f / 16), 0f, HeadActivation.Gelu);
    }

    [GlobalCleanup]
    public void Cleanup() => _kernels.Dispose();

    [Benchmark(Baseline = true)]
    public float ReadHidden() => TensorPrimitives.Sum(_hidden);

    [Benchmark]
    public float Linear()
    {
        _kernels.ScoreValues(_linear, _hidden, K, _values);
        return _values[0];
    }

    /// <summary>Two-layer head, 256 GELU units.</summary>
    [Benchmark]
    public float Mlp()
    {
        _kernels.ScoreValues(_mlp, _hidden, K, _values);
        return _values[0];
    }
}
