using Tilt.Kernels.Cpu;

namespace Tilt.Kernels;

/// <summary>Creates the step kernels once at start-up.</summary>
public static class StepKernels
{
    /// <summary>
    /// Creates a backend. <see cref="KernelBackend.Auto"/> takes CUDA through ILGPU when a usable CUDA device
    /// exists, else the SIMD CPU backend; <paramref name="log"/> receives one line saying which and why.
    /// </summary>
    /// <exception cref="NotSupportedException"><see cref="KernelBackend.Cuda"/> was forced and no usable CUDA device exists.</exception>
    public static IStepKernels Create(KernelBackend backend = KernelBackend.Auto, Action<string>? log = null)
    {
        switch (backend)
        {
            case KernelBackend.Cpu:
                log?.Invoke($"step kernels: cpu-simd (forced); {CpuStepKernels.Describe()}");
                return new CpuStepKernels();
            case KernelBackend.Cuda:
            {
                var gpu = Ilgpu.IlgpuStepKernels.CreateCuda(out string why);
                if (gpu is null)
                    throw new NotSupportedException($"KernelBackend.Cuda was requested but {why}.");
                log?.Invoke($"step kernels: ilgpu-cuda (forced); {why}");
                return gpu;
            }
            case KernelBackend.IlgpuCpu:
                log?.Invoke("step kernels: ilgpu-cpu (forced; GPU simulator for tests, far slower than cpu-simd)");
                return Ilgpu.IlgpuStepKernels.CreateCpuSimulator();
            case KernelBackend.Auto:
            {
                IStepKernels? gpu;
                string why;
                try
                {
                    gpu = Ilgpu.IlgpuStepKernels.CreateCuda(out why);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // A broken driver or toolkit must not take the engine down: the CPU backend always works.
                    gpu = null;
                    why = $"CUDA initialisation failed ({e.GetType().Name}: {e.Message})";
                }
                if (gpu is not null)
                {
                    log?.Invoke($"step kernels: ilgpu-cuda (auto); {why}");
                    return gpu;
                }
                log?.Invoke($"step kernels: cpu-simd (auto: {why}); {CpuStepKernels.Describe()}");
                return new CpuStepKernels();
            }
            default:
                throw new ArgumentException($"Unknown backend {backend}.", nameof(backend));
        }
    }
}
