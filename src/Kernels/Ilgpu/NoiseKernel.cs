using ILGPU;

namespace Tilt.Kernels.Ilgpu;

/// <summary>Diagnostics: the Gumbel noise of the columns [0, columns) of one row, to compare the device's bits with the CPU's.</summary>
internal static class NoiseKernel
{
    public static void Run(
        Index1D i,                // column offset
        ArrayView<float> noise,   // [count] out
        RowSettings key,          // the stream (only the key fields are read)
        int columns)              // row length
    {
        int column = i;
        GumbelNoise.BlockDraw(key.Row, key.Step, key.Request, key.SeedLo, key.SeedHi, column / GumbelNoise.BlockSize, columns,
            out float first, out int firstOffset);
        noise[i] = GumbelNoise.FromBlock(key.Row, key.Step, key.Request, key.SeedLo, key.SeedHi, column, first, firstOffset);
    }
}
