using Tilt.Engine.Evaluation;
using Tilt.Engine.Heads;
using Tilt.Engine.Requests;

namespace Tilt.Cli.Commands;

/// <summary>
/// Warns on stderr when a value head explains less of the realized reward, at the prefix length a strategy first asks
/// about, than the prefix reward that would replace it does (the metrics <c>tilt train value</c> stores in the head).
/// </summary>
internal static class ValueHeadWarning
{
    /// <summary>
    /// The prefix length of a strategy's first value decision: M tokens for blockwise CD (the first block), 1 for
    /// token-wise CD (the first token), <c>--every</c> for early rejection; null when no value is used.
    /// </summary>
    public static int? DecisionLength(AlignOptions options) => options switch
    {
        BlockwiseOptions blockwise => blockwise.BlockSize,
        BeamOptions beam => beam.BlockSize,
        TokenwiseOptions => 1,
        RejectionOptions rejection => rejection.DecideAt ?? rejection.Every,
        _ => null,
    };

    /// <summary><see cref="DecisionLength(AlignOptions)"/> of an evaluation point.</summary>
    public static int? DecisionLength(EvaluationConfig config) => config.Method switch
    {
        EvaluationMethod.Blockwise or EvaluationMethod.Beam or EvaluationMethod.Rejection => config.M,
        EvaluationMethod.Tokenwise => 1,
        _ => null,
    };

    /// <summary>One warning line per distinct message for the head at <paramref name="headPath"/> (none without a head).</summary>
    public static void Write(TextWriter error, string? headPath, IEnumerable<int?> lengths)
    {
        if (headPath is null) return;
        var header = HeadFile.Read(headPath).Header;
        // Lengths in one bucket give the same comparison: say it once per bucket, for the shortest length.
        var said = new HashSet<string>(StringComparer.Ordinal);
        foreach (int length in lengths.OfType<int>().Distinct().Order())
        {
            if (HeldOutAccuracy.Warning(headPath, header, length) is { } warning
                && said.Add(warning[warning.IndexOf("(held-out", StringComparison.Ordinal)..]))
                error.WriteLine(warning);
        }
    }
}
