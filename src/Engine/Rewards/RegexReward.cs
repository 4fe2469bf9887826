using System.Globalization;
using System.Text.RegularExpressions;

namespace Tilt.Engine.Rewards;

/// <summary>
/// Counts a pattern: r = the number of non-overlapping matches of a .NET regular expression in the continuation
/// text, scanning left to right as <see cref="Regex.Count(string)"/> does (so "aa" matches "aaaa" twice, not three
/// times). Matching is case-sensitive and culture-invariant; write (?i) in the pattern to ignore case. A pattern
/// that can match the empty string counts its empty matches too (a* finds one at every position), so prefer
/// patterns that cannot. Only <see cref="RewardInput.Text"/> is scored. Spec: <c>regex:PATTERN</c>.
/// </summary>
public sealed class RegexReward : IReward
{
    /// <summary>How long one count may run before the candidate fails (catastrophic backtracking). 1 second.</summary>
    public static readonly TimeSpan DefaultMatchTimeout = TimeSpan.FromSeconds(1);

    private readonly Regex _regex;

    /// <summary>A count of <paramref name="pattern"/> with <see cref="DefaultMatchTimeout"/>.</summary>
    /// <exception cref="TiltException">The pattern is empty or invalid; the message names it and the parser's problem.</exception>
    public RegexReward(string pattern) : this(pattern, DefaultMatchTimeout) { }

    /// <summary>A count of <paramref name="pattern"/>; a count that runs past <paramref name="matchTimeout"/> fails.</summary>
    /// <exception cref="TiltException">The pattern is empty or invalid; the message names it and the parser's problem.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="matchTimeout"/> is not positive.</exception>
    public RegexReward(string pattern, TimeSpan matchTimeout)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(matchTimeout, TimeSpan.Zero);
        if (pattern.Length == 0)
        {
            throw new TiltException("invalid regex '': an empty pattern matches at every position");
        }

        try
        {
            _regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, matchTimeout);
        }
        catch (ArgumentException e)
        {
            // RegexParseException: its message gives the offset and the problem.
            throw new TiltException($"invalid regex '{pattern}': {e.Message}", e);
        }

        Pattern = pattern;
        MatchTimeout = matchTimeout;
    }

    /// <summary>The pattern as given.</summary>
    public string Pattern { get; }

    /// <summary>The limit on one candidate's count.</summary>
    public TimeSpan MatchTimeout { get; }

    public string Description => "regex:" + Pattern;

    public bool NeedsHiddenState => false;

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        for (int i = 0; i < candidates.Count; i++)
        {
            // Under a request's deadline the per-call limit is cut to what is left of it (ScoringBudget).
            var (timeout, byBudget) = ScoringBudget.Current.Clip(MatchTimeout);
            try
            {
                rewards[i] = byBudget
                    ? Regex.Count(candidates[i].Text, Pattern, RegexOptions.CultureInvariant, timeout)
                    : _regex.Count(candidates[i].Text);
            }
            catch (RegexMatchTimeoutException e) when (byBudget)
            {
                throw new ScoringBudgetExceededException(e);
            }
            catch (RegexMatchTimeoutException e)
            {
                throw new TiltException(
                    $"reward '{Description}' timed out after {MatchTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s on candidate {i}; simplify the pattern",
                    e);
            }
        }
    }
}
