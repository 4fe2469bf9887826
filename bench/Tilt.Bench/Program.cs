using BenchmarkDotNet.Running;
using Tilt.Bench.EndToEnd;

namespace Tilt.Bench;

/// <summary>
/// <c>e2e ...</c> runs the end-to-end harness (engine vs raw llama.cpp batch decode vs naive best-of-n);
/// <c>serve-load ...</c> drives <c>tilt serve</c> with concurrent streaming clients over loopback HTTP and in-process;
/// <c>cuda-parity ...</c> checks the CUDA step kernels against the CPU backend (needs a GPU);
/// anything else goes to BenchmarkDotNet's switcher (micro-benchmarks: step kernels, generation).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "e2e") return EndToEndHarness.Run(args[1..]);
        if (args.Length > 0 && args[0] == "cuda-parity") return Kernels.CudaParity.Run(args[1..]);
        if (args.Length > 0 && args[0] == "serve-load") return Serving.ServeLoad.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
