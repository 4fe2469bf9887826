namespace Tilt.Engine.Values;

/// <summary>
/// Values as the float step kernels take them. Rewards and values are doubles, and a finite one such as 1e300 or
/// -DBL_MAX has no float. A tilt exp(V / beta) is only ever normalized over a row's candidates ([M14], [M18]), so
/// subtracting the row's largest value changes no probability; after it every value lies in (-inf, 0], the largest
/// is exactly 0, and one too far below the best to be drawn at all narrows to -inf (never drawn, which is exact to
/// float precision).
/// </summary>
internal static class KernelValues
{
    /// <summary>Writes V_j - max_k V_k of <paramref name="values"/> (finite) into <paramref name="destination"/>.</summary>
    public static void ShiftToFloat(ReadOnlySpan<double> values, Span<float> destination)
    {
        if (values.IsEmpty) return;
        double max = values[0];
        for (int i = 1; i < values.Length; i++) max = Math.Max(max, values[i]);
        for (int i = 0; i < values.Length; i++)
        {
            // -DBL_MAX - 1e300 overflows to -inf in double: correctly "never drawn".
            double shifted = values[i] - max;
            destination[i] = shifted < float.MinValue ? float.NegativeInfinity : (float)shifted;
        }
    }
}
