using Tilt.Kernels.Cpu;

namespace Tilt.Kernels;

/// <summary>Creates the step kernels once at start-up.</summary>
public static class StepKernels
{
    /// <summary>
    /// Creates a backend; <paramref name="log"/> receives one line saying which and why. <see cref="KernelBackend.Auto"/>
    /// takes the SIMD CPU backend: logits come from llama.cpp in host memory, and there it measured faster than the
    /// CUDA kernels at every shape (docs/kernels.md). <see cref="KernelBackend.Cuda"/> forces the GPU.
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
                // Measured (docs/kernels.md, H100 host): with logits in host memory, which is how llama.cpp hands
                // them over, the CPU backend beat the CUDA kernels on every step shape, because each call must
                // upload the logits first. So Auto takes the CPU backend and says so when a GPU was available;
                // Cuda stays one option away for devices and shapes where it pays.
                string why = Ilgpu.IlgpuStepKernels.DescribeCuda();
                log?.Invoke($"step kernels: cpu-simd (auto: {why}; logits arrive in host memory, where cpu-simd measured faster than ilgpu-cuda; force --backend Cuda to use the GPU); {CpuStepKernels.Describe()}");
                return new CpuStepKernels();
            }
            default:
                throw new ArgumentException($"Unknown backend {backend}.", nameof(backend));
        }
    }
}
