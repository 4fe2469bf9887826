namespace Tilt.Kernels;

/// <summary>Which implementation of <see cref="IStepKernels"/> to use.</summary>
public enum KernelBackend
{
    /// <summary>
    /// The SIMD CPU backend, with or without a CUDA device: logits arrive from llama.cpp in host memory, where it
    /// measured faster than the CUDA kernels (docs/kernels.md). <see cref="Cuda"/> forces the GPU.
    /// </summary>
    Auto,

    /// <summary>The SIMD CPU backend (System.Numerics.Tensors / Vector256). Allocation-free per step.</summary>
    Cpu,

    /// <summary>ILGPU kernels on the first CUDA device; creation fails when there is none.</summary>
    Cuda,

    /// <summary>
    /// The same ILGPU kernels on ILGPU's CPU accelerator (a thread-based GPU simulator). For tests only:
    /// it is 5-2000x slower than the SIMD CPU backend and is never chosen automatically.
    /// </summary>
    IlgpuCpu,
}
