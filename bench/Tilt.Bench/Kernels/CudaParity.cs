using System.Diagnostics;
using Tilt.Kernels;

namespace Tilt.Bench.Kernels;

/// <summary>
/// The CUDA parity suite as a console command (for GPU machines without the .NET SDK's test runner):
/// <c>dotnet run -c Release --project bench/Tilt.Bench -- cuda-parity [--quick] [--no-timing]</c>.
/// Runs the ILGPU kernels on the first CUDA device against the SIMD CPU backend on LLM-like random inputs at the
/// production shapes, reports token mismatches (the near-tie rate), value deviations and step timings, and exits
/// non-zero when a token differs or a value is out of tolerance. Without a CUDA device it fails (exit code 2).
/// </summary>
public static class CudaParity
{
    public static int Run(string[] args)
    {
        bool quick = args.Contains("--quick");
        bool timing = !args.Contains("--no-timing");
        IStepKernels gpu;
        try
        {
            gpu = StepKernels.Create(KernelBackend.Cuda, Console.WriteLine);
        }
        catch (Exception e)
        {
            Console.WriteLine($"FAIL: no usable CUDA backend: {e.Message}");
            return 2;
        }
        using (gpu)
        using (var cpu = StepKernels.Create(KernelBackend.Cpu, Console.WriteLine))
        {
            int failures = NoiseParity(gpu) + TokenParity(gpu, cpu, quick) + HeadParity(gpu, cpu);
            if (timing)
                Timings(gpu, cpu, quick);
            Console.WriteLine(failures == 0 ? "PASS: CUDA parity" : $"FAIL: {failures} parity failure(s)");
            return failures == 0 ? 0 : 1;
        }
    }

    private static readonly SamplingParameters[] Mix =
    [
        new(1f), new(0f), new(0.7f), new(1.3f), new(1f, TopK: 40), new(0.8f, TopK: 50, TopP: 0.95f), new(1f, TopP: 0.9f),
        new(1f, TopK: 1), new(0.6f, TopP: 0.5f),
    ];

    private sealed record Inputs(float[] Logits, int Rows, int Vocab, int[]? Ids, int Candidates, float[]? Values, float[] Beta,
        SamplingParameters[] P, RngKey[] Keys);

    private static float Normal(Random rng) =>
        (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));

    private static Inputs Make(Random rng, int rows, int vocab, int candidates, bool tilt, SamplingParameters? only = null)
    {
        var logits = new float[(long)rows * vocab];
        for (long i = 0; i < logits.Length; i++)
        {
            float v = 2.5f * Normal(rng);
            if (rng.NextDouble() < 0.001)
                v += 12f; // a few confident tokens, as a trained model has
            logits[i] = rng.NextDouble() < 0.01 ? float.NegativeInfinity : v;
        }
        for (int r = 0; r < rows; r++)
            logits[(long)r * vocab + rng.Next(vocab)] = 15f;
        int[]? ids = null;
        if (candidates < vocab)
        {
            ids = new int[rows * candidates];
            for (int r = 0; r < rows; r++)
            {
                var chosen = new HashSet<int>();
                while (chosen.Count < candidates)
                    chosen.Add(rng.Next(vocab));
                chosen.ToArray().CopyTo(ids, r * candidates);
                logits[(long)r * vocab + ids[r * candidates]] = 15f;
            }
        }
        else
        {
            candidates = vocab;
        }
        float[]? values = tilt ? Enumerable.Range(0, rows * candidates).Select(_ => Normal(rng)).ToArray() : null;
        var beta = Enumerable.Range(0, rows).Select(_ => rng.Next(3) switch { 0 => float.PositiveInfinity, 1 => 0.2f, _ => 1f }).ToArray();
        var p = Enumerable.Range(0, rows).Select(_ => only ?? Mix[rng.Next(Mix.Length)]).ToArray();
        var keys = Enumerable.Range(0, rows).Select(r => new RngKey((ulong)rng.NextInt64(), (uint)rng.Next(), (uint)rng.Next(4096), (uint)r)).ToArray();
        return new Inputs(logits, rows, vocab, ids, candidates, values, beta, p, keys);
    }

    private static (int[] T, float[] B, float[] L, float[] K) Step(IStepKernels k, Inputs x)
    {
        var o = (new int[x.Rows], new float[x.Rows], new float[x.Rows], new float[x.Rows]);
        k.TiltedStep(x.Logits, x.Rows, x.Vocab, x.Ids, x.Candidates, x.Values, x.Beta, x.P, x.Keys, o.Item1, o.Item2, o.Item3, o.Item4);
        return o;
    }

    // The noise must agree bit for bit (DeviceFloat's IEEE operations and the PTX log block); tokens agreeing is a
    // weaker check, since a 1-ulp noise difference rarely changes an argmax.
    private static int NoiseParity(IStepKernels gpu)
    {
        if (gpu is not Tilt.Kernels.Ilgpu.IlgpuStepKernels device)
            return 0;
        const int count = (1 << 22) + 17; // a partial last block too
        var got = new float[count];
        int failures = 0;
        foreach (var key in new[] { new RngKey(0, 0, 0, 0), new RngKey(0xDEADBEEFCAFEF00D, 7, 123, 45), new RngKey(42, 1, 2, 3) })
        {
            device.Noise(key, got);
            int bad = 0;
            for (int c = 0; c < count; c++)
                if (BitConverter.SingleToInt32Bits(got[c]) != BitConverter.SingleToInt32Bits(GumbelNoise.Sample(key, c, count)))
                {
                    if (bad++ < 5)
                        Console.WriteLine($"  NOISE MISMATCH {key} column {c}: cuda {got[c]:R} cpu {GumbelNoise.Sample(key, c, count):R}");
                }
            Console.WriteLine($"noise bits {key}: {count} columns, {bad} differ");
            failures += bad > 0 ? 1 : 0;
        }
        return failures;
    }

    private static int TokenParity(IStepKernels gpu, IStepKernels cpu, bool quick)
    {
        (int Rows, int Vocab, int Candidates, bool Tilt, int Steps)[] configs =
        [
            (256, 512, 512, true, 40), (64, 32000, 32000, true, 8), (256, 32000, 64, true, 40), (16, 128256, 128256, false, 8),
            (256, 128256, 128256, true, 2), (256, 128256, 256, true, 20), (1, 7, 7, false, 200), (257, 33, 9, true, 40),
        ];
        var rng = new Random(20251127);
        long rows = 0, mismatches = 0;
        double worstBase = 0, worstTilted = 0, worstKl = 0;
        int failures = 0;
        Console.WriteLine("token parity (CUDA vs cpu-simd):");
        foreach (var c in configs)
        {
            long mm = 0;
            int steps = quick ? Math.Max(1, c.Steps / 8) : c.Steps;
            for (int s = 0; s < steps; s++)
            {
                var x = Make(rng, c.Rows, c.Vocab, c.Candidates, c.Tilt);
                var g = Step(gpu, x);
                var h = Step(cpu, x);
                for (int r = 0; r < x.Rows; r++)
                {
                    rows++;
                    if (g.T[r] != h.T[r])
                    {
                        mm++;
                        Console.WriteLine($"  MISMATCH [{c.Rows}x{c.Vocab}, c={c.Candidates}] step {s} row {r} {x.P[r]} beta {x.Beta[r]}: cuda {g.T[r]} cpu {h.T[r]}");
                        continue;
                    }
                    worstBase = Math.Max(worstBase, Math.Abs(g.B[r] - h.B[r]) / (1 + Math.Abs(h.B[r])));
                    worstTilted = Math.Max(worstTilted, Math.Abs(g.L[r] - h.L[r]) / (1 + Math.Abs(h.L[r])));
                    worstKl = Math.Max(worstKl, Math.Abs(g.K[r] - h.K[r]) / (1 + Math.Abs(h.K[r])));
                }
            }
            mismatches += mm;
            Console.WriteLine($"  rows {c.Rows,3} vocab {c.Vocab,6} candidates {c.Candidates,6} tilt {c.Tilt,-5}: {steps * c.Rows,6} draws, {mm} token mismatch(es)");
        }
        Console.WriteLine($"  total {rows} draws, {mismatches} mismatches (rate {(double)mismatches / rows:E2}); " +
            $"worst relative deviation: base log-prob {worstBase:E2}, tilted log-prob {worstTilted:E2}, KL {worstKl:E2}");
        if (mismatches > 0)
            failures++;
        // float32 partition sums differ from float64 by ~1e-6 relative over 128k terms; 1e-4 flags a real bug.
        if (worstBase > 1e-4 || worstTilted > 1e-4 || worstKl > 1e-4)
            failures++;
        return failures;
    }

    private static int HeadParity(IStepKernels gpu, IStepKernels cpu)
    {
        var rng = new Random(7);
        int failures = 0;
        foreach (int d in new[] { 64, 768, 4096 })
        {
            const int rows = 64;
            var hidden = Enumerable.Range(0, rows * d).Select(_ => Normal(rng)).ToArray();
            ValueHead[] heads =
            [
                new LinearValueHead(Enumerable.Range(0, d).Select(_ => Normal(rng) / MathF.Sqrt(d)).ToArray(), 0.1f),
                new MlpValueHead(Enumerable.Range(0, 256 * d).Select(_ => Normal(rng) / MathF.Sqrt(d)).ToArray(),
                    Enumerable.Range(0, 256).Select(_ => 0.1f * Normal(rng)).ToArray(), Enumerable.Range(0, 256).Select(_ => Normal(rng) / 16).ToArray(), 0f, HeadActivation.Gelu),
            ];
            foreach (var head in heads)
            {
                var a = new float[rows];
                var b = new float[rows];
                gpu.ScoreValues(head, hidden, rows, a);
                cpu.ScoreValues(head, hidden, rows, b);
                double worst = a.Zip(b, (u, v) => Math.Abs(u - v) / (1 + Math.Abs(v))).Max();
                bool ok = worst < 1e-4;
                failures += ok ? 0 : 1;
                Console.WriteLine($"value head {head.GetType().Name,-16} d {d,4}: worst relative deviation {worst:E2} {(ok ? "ok" : "FAIL")}");
            }
        }
        return failures;
    }

    private static double MedianMs(Action action, int repeats)
    {
        action();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[repeats / 2];
    }

    private static void Timings(IStepKernels gpu, IStepKernels cpu, bool quick)
    {
        Console.WriteLine($"timings, median ms per call (host arrays in, results out; cuda includes the upload; cpu-simd on {Environment.ProcessorCount} threads):");
        Console.WriteLine("  K    vocab    | tilted step cuda | tilted step cpu | SampleBase cuda | SampleBase cpu | 64 candidates cuda | 64 candidates cpu");
        var rng = new Random(1);
        foreach (int vocab in new[] { 512, 32000, 128256 })
            foreach (int k in new[] { 1, 16, 64, 256 })
            {
                var x = Make(rng, k, vocab, vocab, true, new SamplingParameters());
                var y = x with { P = Enumerable.Repeat(new SamplingParameters(0.8f, TopK: 50, TopP: 0.95f), k).ToArray() };
                int rep = quick ? 3 : 7;
                double tg = MedianMs(() => Step(gpu, x), rep), tc = MedianMs(() => Step(cpu, x), rep);
                var tok = new int[k];
                var b1 = new float[k];
                var b2 = new float[k];
                double sg = MedianMs(() => gpu.SampleBase(x.Logits, k, vocab, y.P, x.Keys, tok, b1, b2), rep);
                double sc = MedianMs(() => cpu.SampleBase(x.Logits, k, vocab, y.P, x.Keys, tok, b1, b2), rep);
                var z = Make(rng, k, vocab, Math.Min(64, vocab - 1), true, new SamplingParameters());
                double cg = MedianMs(() => Step(gpu, z), rep), cc = MedianMs(() => Step(cpu, z), rep);
                Console.WriteLine($"  {k,3} {vocab,7}  | {tg,16:F3} | {tc,15:F3} | {sg,15:F3} | {sc,14:F3} | {cg,18:F3} | {cc,17:F3}");
            }
        Console.WriteLine("  value heads, K = 256: d | linear cuda | linear cpu | mlp(256, gelu) cuda | mlp cpu");
        foreach (int d in new[] { 64, 768, 4096 })
        {
            const int k = 256;
            var hidden = Enumerable.Range(0, k * d).Select(_ => Normal(rng)).ToArray();
            var lin = new LinearValueHead(Enumerable.Range(0, d).Select(_ => Normal(rng)).ToArray(), 0f);
            var mlp = new MlpValueHead(Enumerable.Range(0, 256 * d).Select(_ => Normal(rng) / MathF.Sqrt(d)).ToArray(),
                new float[256], Enumerable.Range(0, 256).Select(_ => Normal(rng)).ToArray(), 0f, HeadActivation.Gelu);
            var v = new float[k];
            Console.WriteLine($"  {d,4} | {MedianMs(() => gpu.ScoreValues(lin, hidden, k, v), 5),11:F3} | {MedianMs(() => cpu.ScoreValues(lin, hidden, k, v), 5),10:F3} | " +
                $"{MedianMs(() => gpu.ScoreValues(mlp, hidden, k, v), 5),19:F3} | {MedianMs(() => cpu.ScoreValues(mlp, hidden, k, v), 5),7:F3}");
        }
    }
}
