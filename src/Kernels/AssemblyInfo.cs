using System.Runtime.CompilerServices;

// ILGPU's CPU accelerator runs kernels through a dynamic assembly named ILGPURuntime, which must see the internal
// kernel argument types.
[assembly: InternalsVisibleTo("ILGPURuntime")]
