using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Tilt.Kernels.Ilgpu;

namespace Tilt.Kernels.Tests;

/// <summary>
/// Compiles every kernel to PTX for an H100-class device (sm_90) without a GPU, so that a construct the CUDA backend
/// cannot translate fails here, in CI, rather than at start-up on a GPU machine. (Running them needs the GPU script.)
/// </summary>
public class PtxCompileTests
{
    public static TheoryData<string, string> Kernels => new()
    {
        { nameof(StepKernel), nameof(StepKernel.Run) },
        { nameof(HeadKernels), nameof(HeadKernels.Linear) },
        { nameof(HeadKernels), nameof(HeadKernels.Mlp) },
    };

    [Theory]
    [MemberData(nameof(Kernels))]
    public void CompilesToPtx(string type, string method)
    {
        var mi = typeof(StepKernel).Assembly.GetType($"Tilt.Kernels.Ilgpu.{type}")!.GetMethod(method)!;
        using var context = Context.Create(b => b.Cuda().EnableAlgorithms());
        var backend = new PTXBackend(context, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(mi), KernelSpecialization.Empty);
        Assert.Contains(".entry", compiled.PTXAssembly);
        if (type == nameof(StepKernel))
        {
            // The noise and the scores must use the never-fused round-to-nearest forms (see DeviceFloat).
            Assert.Contains("mul.rn.f32", compiled.PTXAssembly);
            Assert.Contains("add.rn.f32", compiled.PTXAssembly);
            Assert.Contains("div.rn.f32", compiled.PTXAssembly);
        }
    }
}
