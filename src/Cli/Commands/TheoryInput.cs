namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt theory</c>'s options, read as text and parsed here rather than by System.CommandLine, so that a bad number, a
/// missing option and an invalid distribution all end the same way: one "error: ..." line naming the option and the
/// offending value.
/// </summary>
internal static class TheoryInput
{
    public static double[] ParseDistribution(string? text, string option)
    {
        double[] values = ParseNumbers(text, option);
        if (ProbabilityVector.FindProblem(values, option) is { } problem)
        {
            throw new ArgumentException(problem);
        }

        return values;
    }

    public static double[] ParseRewards(string? text, string option, int expectedCount, string countOption)
    {
        double[] values = ParseNumbers(text, option);
        for (int i = 0; i < values.Length; i++)
        {
            if (!double.IsFinite(values[i]))
            {
                throw new ArgumentException($"{option}[{i}] = {Format(values[i])} is not a finite number.");
            }
        }

        if (values.Length != expectedCount)
        {
            throw new ArgumentException($"{option} has {values.Length} values but {countOption} has {expectedCount}.");
        }

        return values;
    }

    public static double[] ParseBetas(string text, string option)
    {
        double[] values = ParseNumbers(text, option);
        for (int i = 0; i < values.Length; i++)
        {
            RequireBeta(values[i], $"{option}[{i}]");
        }

        return values;
    }

    public static double ParseBeta(string? text, string option)
    {
        double[] values = ParseNumbers(text, option);
        if (values.Length != 1)
        {
            throw new ArgumentException($"{option} takes one number, got {values.Length} (\"{text}\").");
        }

        RequireBeta(values[0], option);
        return values[0];
    }

    private static void RequireBeta(double beta, string name)
    {
        if (!double.IsFinite(beta) || beta <= 0.0)
        {
            throw new ArgumentException($"{name} must be a finite number > 0, got {Format(beta)}.");
        }
    }

    public static int ParseDraws(string? text, string option)
    {
        if (text is null)
        {
            throw new ArgumentException($"{option} is required.");
        }

        if (!int.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n))
        {
            throw new ArgumentException($"{option}: \"{text}\" is not an integer (1 to {int.MaxValue}).");
        }

        if (n < 1)
        {
            throw new ArgumentException($"{option} must be >= 1, got {n}.");
        }

        return n;
    }

    private static double[] ParseNumbers(string? text, string option)
    {
        if (text is null)
        {
            throw new ArgumentException($"{option} is required.");
        }

        string[] items = text.Split(',');
        var values = new double[items.Length];
        for (int i = 0; i < items.Length; i++)
        {
            string item = items[i].Trim();
            if (!double.TryParse(item, NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]))
            {
                throw new ArgumentException($"{option}: \"{item}\" (item {i + 1} of \"{text}\") is not a number.");
            }
        }

        return values;
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
