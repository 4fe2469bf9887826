using Tilt.Engine.Statistics;

namespace Tilt.Engine.Evaluation;

/// <summary>The win-rate of one evaluated point's outputs against another's on the same prompts.</summary>
/// <param name="A">The point whose outputs are counted as winning.</param>
/// <param name="B">The point it is compared with.</param>
/// <param name="WinRate">P(r_A &gt; r_B) + 1/2 P(r_A = r_B) over pairs of outputs of the same prompt [M10], averaged over prompts.</param>
/// <param name="Lower">Lower end of the 95% interval (DeLong per prompt, combined over prompts), clipped to [0, 1].</param>
/// <param name="Upper">Upper end of the 95% interval.</param>
public sealed record PairwiseWinRate(string A, string B, double WinRate, double Lower, double Upper);

/// <summary>
/// Strategy A against strategy B, not only against base samples: for every prompt the Mann-Whitney win-rate of A's
/// outputs over B's with DeLong's variance (<see cref="Statistics.WinRate.Estimate"/>), then the mean over prompts with
/// variance sum(se_p^2) / P^2 (prompts are independent), as <see cref="Evaluator"/> does against base samples.
/// </summary>
public static class PairwiseWinRates
{
    /// <summary>Every ordered pair (A, B), A != B, of the points that carry per-prompt rewards over the same number of prompts.</summary>
    public static IReadOnlyList<PairwiseWinRate> Compute(IReadOnlyList<EvaluatedPoint> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        var usable = points.Where(p => p.PromptRewards is { Count: > 0 } r && r.Prompts.All(x => x.Count > 0)).ToArray();
        var result = new List<PairwiseWinRate>();
        foreach (var a in usable)
        {
            foreach (var b in usable)
            {
                if (ReferenceEquals(a, b) || a.Id == b.Id || a.PromptRewards!.Count != b.PromptRewards!.Count) continue;
                result.Add(Of(a, b));
            }
        }
        return result;
    }

    /// <summary>The win-rate of <paramref name="a"/> against <paramref name="b"/>.</summary>
    /// <exception cref="ArgumentException">A point has no per-prompt rewards, or the two cover different numbers of prompts.</exception>
    public static PairwiseWinRate Of(EvaluatedPoint a, EvaluatedPoint b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.PromptRewards is not { } ra || b.PromptRewards is not { } rb)
            throw new ArgumentException($"points {a.Id} and {b.Id} must both carry per-prompt rewards");
        if (ra.Count != rb.Count || ra.Count == 0)
            throw new ArgumentException($"point {a.Id} covers {ra.Count} prompts and {b.Id} {rb.Count}; a pairwise win-rate needs the same prompts");
        double sum = 0, variance = 0;
        for (int p = 0; p < ra.Count; p++)
        {
            var w = Statistics.WinRate.Estimate(ra[p].ToArray(), rb[p].ToArray());
            // Where DeLong's variance is degenerate the estimate carries a Wilson interval: its half-width gives the se.
            double se = w.Interval == WinRateInterval.DeLong ? w.StandardError : (w.Upper - w.Lower) / (2 * Statistics.WinRate.Z95);
            sum += w.Value;
            variance += se * se;
        }
        int prompts = ra.Count;
        double win = sum / prompts, half = Statistics.WinRate.Z95 * Math.Sqrt(variance) / prompts;
        return new PairwiseWinRate(a.Id, b.Id, win, Math.Max(0, win - half), Math.Min(1, win + half));
    }
}
