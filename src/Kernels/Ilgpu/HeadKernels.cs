using ILGPU;

namespace Tilt.Kernels.Ilgpu;

/// <summary>Scalars of a value-head launch.</summary>
internal struct HeadShape
{
    public int InputSize;   // d
    public int Units;       // hidden units (MLP) or 1 (linear)
    public int Activation;  // HeadActivation
    public float OutputBias;
}

/// <summary>Value-head kernels: one group per row of hidden states, group-wide dot products in shared memory.</summary>
internal static class HeadKernels
{
    public const int MaxGroupSize = 256;

    /// <summary>V = h . w + b.</summary>
    public static void Linear(
        ArrayView<float> hidden,  // [rows, d]
        ArrayView<float> weights, // [d]
        ArrayView<float> values,  // [rows] out
        HeadShape shape)
    {
        var shared = SharedMemory.Allocate<float>(MaxGroupSize);
        int row = Grid.IdxX;
        float dot = Dot(hidden, (long)row * shape.InputSize, weights, 0, shape.InputSize, shared);
        if (Group.IdxX == 0)
            values[row] = dot + shape.OutputBias;
    }

    /// <summary>V = w2 . act(W1 h + b1) + b2.</summary>
    public static void Mlp(
        ArrayView<float> hidden, // [rows, d]
        ArrayView<float> w1,     // [units, d]
        ArrayView<float> b1,     // [units]
        ArrayView<float> w2,     // [units]
        ArrayView<float> values, // [rows] out
        HeadShape shape)
    {
        var shared = SharedMemory.Allocate<float>(MaxGroupSize);
        int row = Grid.IdxX, d = shape.InputSize;
        float v = shape.OutputBias;
        for (int j = 0; j < shape.Units; j++)
        {
            float a = Dot(hidden, (long)row * d, w1, (long)j * d, d, shared);
            v += w2[j] * MlpValueHead.Activate(a + b1[j], shape.Activation);
        }
        if (Group.IdxX == 0)
            values[row] = v;
    }

    private static float Dot(ArrayView<float> a, long aBase, ArrayView<float> b, long bBase, int n, ArrayView<float> shared)
    {
        int tid = Group.IdxX;
        float sum = 0f;
        for (int i = tid; i < n; i += Group.DimX)
            sum += a[aBase + i] * b[bBase + i];
        shared[tid] = sum;
        Group.Barrier();
        for (int s = Group.DimX >> 1; s > 0; s >>= 1)
        {
            if (tid < s)
                shared[tid] += shared[tid + s];
            Group.Barrier();
        }
        float r = shared[0];
        Group.Barrier();
        return r;
    }
}
