using BenchmarkDotNet.Running;
using Tilt.Bench.EndToEnd;

namespace Tilt.Bench;

/// <summary>
/// <c>e2e ...</c> runs the end-to-end harness (engine vs raw llama.cpp batch decode vs naive best-of-n);
/// <c>concurrent ...</c> runs N concurrent requests on one engine against one-at-a-time and raw batched decode;
/// <c>serve-load ...</c> drives <c>tilt serve</c> with concurrent streaming clients over loopback HTTP and in-process;
/// <c>fragment ...</c> runs a workload that fragments sequence ids, with id compaction on and off, against the C loop;
/// <c>scoring ...</c> compares the scoring stage with scoring on the scheduler's thread (neural rewards, a slow reward);
/// <c>cuda-parity ...</c> checks the CUDA step kernels against the CPU backend (needs a GPU);
/// <c>neural-share ...</c> measures the share of a best-of-n request's time spent in a neural reward;
/// anything else goes to BenchmarkDotNet's switcher (micro-benchmarks: step kernels, generation).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "e2e") return EndToEndHarness.Run(args[1..]);
        if (args.Length > 0 && args[0] == "concurrent") return ConcurrencyHarness.Run(args[1..]);
        if (args.Length > 0 && args[0] == "fragment") return FragmentationHarness.Run(args[1..]);
        if (args.Length > 0 && args[0] == "scoring") return ScoringHarness.Run(args[1..]);
        if (args.Length > 0 && args[0] == "cuda-parity") return Kernels.CudaParity.Run(args[1..]);
        if (args.Length > 0 && args[0] == "neural-share") return Neural.NeuralRewardShare.Run(args[1..]);
        if (args.Length > 0 && args[0] == "serve-load") return Serving.ServeLoad.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
