using Tilt.Kernels;

namespace Tilt.Kernels.Tests;

/// <summary>The backends every parity test runs on. ILGPU's CPU accelerator is a slow simulator: keep its shapes small.</summary>
internal static class Backends
{
    public const string Cpu = "cpu-simd";
    public const string IlgpuCpu = "ilgpu-cpu";

    public static TheoryData<string> All => new() { Cpu, IlgpuCpu };

    public static IStepKernels Create(string name) => name switch
    {
        Cpu => StepKernels.Create(KernelBackend.Cpu),
        IlgpuCpu => StepKernels.Create(KernelBackend.IlgpuCpu),
        _ => throw new ArgumentException(name),
    };

    public static bool IsSimulator(string name) => name == IlgpuCpu;
}
