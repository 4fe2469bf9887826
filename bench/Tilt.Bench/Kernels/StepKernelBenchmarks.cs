using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using Tilt.Kernels;

namespace Tilt.Bench.Kernels;

/// <summary>
/// One decoding step of the SIMD CPU backend over K rows of a vocabulary. ReadLogits (one pass over the logits) is the
/// baseline, so the Ratio column is the cost in memory passes: the floor is 1 for SampleBase and 2 for the tilted step
/// (logits and values are both read).
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 5)]
public class StepKernelBenchmarks
{
    private IStepKernels _kernels = null!;
    private float[] _logits = null!;    // [K, vocab]
    private float[] _values = null!;    // [K, vocab] V per token (full-vocabulary tilt)
    private int[] _candidates = null!;  // [K, 64] candidate ids
    private float[] _candidateValues = null!; // [K, 64]
    private float[] _beta = null!;      // [K]
    private SamplingParameters[] _plain = null!, _filtered = null!;
    private RngKey[] _keys = null!;
    private int[] _tokens = null!;
    private float[] _base = null!, _tilted = null!, _kl = null!;

    [Params(1, 16, 64, 256)]
    public int K { get; set; }

    [Params(512, 32000, 128256)]
    public int Vocab { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        _kernels = StepKernels.Create(KernelBackend.Cpu);
        _logits = new float[K * Vocab];
        _values = new float[K * Vocab];
        for (int i = 0; i < _logits.Length; i++)
        {
            // Language-model-like logits: a normal body and a few confident tokens.
            _logits[i] = 2.5f * Normal(rng) + (rng.NextDouble() < 0.001 ? 12f : 0f);
            _values[i] = Normal(rng);
        }
        const int c = 64;
        _candidates = new int[K * c];
        _candidateValues = new float[K * c];
        for (int r = 0; r < K; r++)
        {
            var ids = Enumerable.Range(0, Vocab).OrderBy(_ => rng.Next()).Take(Math.Min(c, Vocab)).ToArray();
            ids.CopyTo(_candidates, r * c);
            for (int j = 0; j < c; j++)
                _candidateValues[r * c + j] = Normal(rng);
        }
        _beta = Enumerable.Repeat(1f, K).ToArray();
        _plain = Enumerable.Repeat(new SamplingParameters(), K).ToArray();
        _filtered = Enumerable.Repeat(new SamplingParameters(0.8f, TopK: 50, TopP: 0.95f), K).ToArray();
        _keys = Enumerable.Range(0, K).Select(r => new RngKey(1, 2, 3, (uint)r)).ToArray();
        _tokens = new int[K];
        _base = new float[K];
        _tilted = new float[K];
        _kl = new float[K];
    }

    [GlobalCleanup]
    public void Cleanup() => _kernels.Dispose();

    private static float Normal(Random rng) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));

    /// <summary>The memory floor: one pass over the logits.</summary>
    [Benchmark(Baseline = true)]
    public float ReadLogits() => TensorPrimitives.Sum(_logits);

    /// <summary>Base sampling at T = 1 over the full vocabulary.</summary>
    [Benchmark]
    public int SampleBase()
    {
        _kernels.SampleBase(_logits, K, Vocab, _plain, _keys, _tokens, _base, _tilted);
        return _tokens[0];
    }

    /// <summary>Base sampling with T = 0.8, top-k 50, top-p 0.95.</summary>
    [Benchmark]
    public int SampleBaseFiltered()
    {
        _kernels.SampleBase(_logits, K, Vocab, _filtered, _keys, _tokens, _base, _tilted);
        return _tokens[0];
    }

    /// <summary>Fused tilt + log-sum-exp + sample + KL over the full vocabulary (V for every token).</summary>
    [Benchmark]
    public int TiltedStepFull()
    {
        _kernels.TiltedStep(_logits, K, Vocab, default, Vocab, _values, _beta, _plain, _keys, _tokens, _base, _tilted, _kl);
        return _tokens[0];
    }

    /// <summary>Fused step over 64 candidates per row (token-wise CD's usual shape).</summary>
    [Benchmark]
    public int TiltedStepCandidates()
    {
        int c = Math.Min(64, Vocab);
        _kernels.TiltedStep(_logits, K, Vocab, _candidates.AsSpan(0, K * 64), c, _candidateValues.AsSpan(0, K * 64), _beta, _plain, _keys,
            _tokens, _base, _tilted, _kl);
        return _tokens[0];
    }
}
