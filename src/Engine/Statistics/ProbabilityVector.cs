using System.Globalization;

namespace Tilt.Engine.Statistics;

/// <summary>Validation of a discrete probability vector, shared by the statistics types and the CLI.</summary>
public static class ProbabilityVector
{
    /// <summary>
    /// How far the sum of a probability vector may be from 1. Wide enough for decimal inputs such as
    /// 0.1,0.2,0.7 typed by a person, narrow enough to catch a forgotten entry.
    /// </summary>
    public const double SumTolerance = 1e-9;

    /// <summary>
    /// Describes the first problem with <paramref name="probabilities"/>, or returns null when it is a valid
    /// distribution: non-empty, every entry finite and non-negative, sum within <see cref="SumTolerance"/> of 1.
    /// </summary>
    /// <param name="probabilities">The candidate distribution.</param>
    /// <param name="name">What to call it in the message (a parameter name, or a CLI option such as "--p").</param>
    /// <remarks>
    /// Returns a message rather than throwing so each caller can throw with its own parameter name
    /// (the engine) or print it as is (the CLI, whose users think in option names).
    /// </remarks>
    public static string? FindProblem(ReadOnlySpan<double> probabilities, string name)
    {
        if (probabilities.IsEmpty)
        {
            return $"{name} is empty; a distribution needs at least one outcome.";
        }

        double sum = 0.0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            double v = probabilities[i];
            if (!double.IsFinite(v))
            {
                return $"{name}[{i}] = {Format(v)} is not a finite number.";
            }

            if (v < 0.0)
            {
                return $"{name}[{i}] = {Format(v)} is negative; probabilities must be >= 0.";
            }

            sum += v;
        }

        if (Math.Abs(sum - 1.0) > SumTolerance)
        {
            return $"{name} sums to {Format(sum)}, not 1 (tolerance {Format(SumTolerance)}).";
        }

        return null;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming <paramref name="paramName"/> when the vector is invalid.</summary>
    internal static void Validate(ReadOnlySpan<double> probabilities, string paramName)
    {
        if (FindProblem(probabilities, paramName) is { } problem)
        {
            throw new ArgumentException(problem, paramName);
        }
    }

    /// <summary>Divides by the sum, so that the cumulative masses reach exactly 1 at the top.</summary>
    /// <remarks>
    /// A sum of 1 + 1e-10, allowed by <see cref="SumTolerance"/>, would otherwise become a factor
    /// (1 + 1e-10)^n in F^n [M5]: 1e-4 of error at n = 10^6.
    /// </remarks>
    internal static double[] Normalize(ReadOnlySpan<double> probabilities)
    {
        double sum = CompensatedSum.Of(probabilities);
        var result = new double[probabilities.Length];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = probabilities[i] / sum;
        }

        return result;
    }

    internal static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
