using Tilt.Kernels;

namespace Tilt.Kernels.Tests;

/// <summary>
/// One ILGPU backend for the whole test run (compiling the kernels takes seconds). TILT_REQUIRE_CUDA=1 selects the
/// CUDA backend and makes its absence a failure; otherwise the CPU accelerator (GPU simulator) is used.
/// </summary>
public sealed class IlgpuFixture : IDisposable
{
    public static bool RequireCuda => Environment.GetEnvironmentVariable("TILT_REQUIRE_CUDA") == "1";

    private readonly Lazy<IStepKernels> _kernels = new(() => StepKernels.Create(RequireCuda ? KernelBackend.Cuda : KernelBackend.IlgpuCpu,
        line => Console.WriteLine(line)));

    /// <summary>Created on first use, so that a missing CUDA device fails the tests that need it, with the reason.</summary>
    public IStepKernels Kernels => _kernels.Value;

    public bool IsCuda => RequireCuda;

    public void Dispose()
    {
        if (_kernels.IsValueCreated)
            _kernels.Value.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class IlgpuCollection : ICollectionFixture<IlgpuFixture>
{
    public const string Name = "ilgpu";
}
