namespace Tilt.Kernels;

/// <summary>
/// Per-row sampling parameters. Defaults (T = 1, no top-k, no top-p) sample from the model's own distribution.
/// </summary>
/// <param name="Temperature">Divides the logits. 0 means greedy: argmax, lowest token id on exact ties. Defaults to 1.</param>
/// <param name="TopK">Keep only the K highest-scoring tokens (ties at the boundary: lowest ids first). 0 = off. Defaults to 0.</param>
/// <param name="TopP">Nucleus: keep the smallest set of highest-probability tokens whose mass is at least TopP,
/// measured after top-k. 1 = off. Defaults to 1.</param>
public readonly record struct SamplingParameters(float Temperature = 1f, int TopK = 0, float TopP = 1f)
{
    /// <summary>
    /// T = 1, no top-k, no top-p. Without this constructor `new SamplingParameters()` would be the all-zero struct
    /// (whose TopP = 0 is invalid), not the documented defaults. default(SamplingParameters) and the elements of a
    /// new array are still all-zero and fail validation: fill arrays explicitly.
    /// </summary>
    public SamplingParameters() : this(1f, 0, 1f)
    {
    }

    /// <summary>
    /// Smallest non-zero temperature: logits / T must stay finite in float. Any temperature this low is greedy in
    /// effect; pass 0 for greedy.
    /// </summary>
    public const float MinTemperature = 1e-4f;

    /// <summary>Greedy decoding (temperature 0).</summary>
    public static SamplingParameters Greedy => new(0f);

    /// <summary>True when this row takes the argmax instead of sampling.</summary>
    public bool IsGreedy => Temperature == 0f;

    /// <summary>Throws <see cref="ArgumentException"/> naming the field and its value when a field is out of range.</summary>
    public void Validate()
    {
        if (!(Temperature == 0f || (Temperature >= MinTemperature && float.IsFinite(Temperature))))
            throw new ArgumentException($"Temperature must be 0 (greedy) or a finite number >= {MinTemperature:R}, got {Temperature:R}.", nameof(Temperature));
        if (TopK < 0)
            throw new ArgumentException($"TopK must be >= 0 (0 = off), got {TopK}.", nameof(TopK));
        if (!(TopP > 0f && TopP <= 1f))
            throw new ArgumentException($"TopP must be in (0, 1] (1 = off), got {TopP}" +
                (TopP == 0f && TopK == 0 && Temperature == 0f ? " (default(SamplingParameters) is all-zero and not valid: use new SamplingParameters())." : "."),
                nameof(TopP));
    }
}
