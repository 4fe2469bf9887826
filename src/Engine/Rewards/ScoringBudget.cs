using System.Diagnostics;

namespace Tilt.Engine.Rewards;

/// <summary>
/// What is left of a request's time and whether it was cancelled, for reward scoring. A deadline covers scoring
/// too: <see cref="RewardExtensions.ScoreWithin"/> checks the budget between candidates, and a regex reward's
/// per-call match timeout is cut to what is left of the budget, so a request's scoring costs at most its budget
/// (plus one candidate, which is always scored so that an output exists).
/// </summary>
public readonly struct ScoringBudget
{
    [ThreadStatic] private static ScoringBudget _current;

    private readonly long _deadlineTimestamp; // Stopwatch timestamp; 0 = no deadline

    private ScoringBudget(long deadlineTimestamp, CancellationToken cancellation)
    {
        _deadlineTimestamp = deadlineTimestamp;
        Cancellation = cancellation;
    }

    /// <summary>No deadline, not cancellable.</summary>
    public static ScoringBudget None => default;

    /// <summary>
    /// The budget of a request whose clock is <paramref name="requestClock"/> and whose deadline (from the start of
    /// that clock) is <paramref name="deadline"/>; null means none.
    /// </summary>
    public static ScoringBudget Until(TimeSpan? deadline, Stopwatch requestClock, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(requestClock);
        if (deadline is not { } limit) return new ScoringBudget(0, cancellation);
        double left = Math.Clamp((limit - requestClock.Elapsed).TotalSeconds, 0, 1e9);
        return new ScoringBudget(Math.Max(1, Stopwatch.GetTimestamp() + (long)(left * Stopwatch.Frequency)), cancellation);
    }

    /// <summary>Cancels the scoring (the request was cancelled).</summary>
    public CancellationToken Cancellation { get; }

    /// <summary>True when there is a deadline.</summary>
    public bool HasDeadline => _deadlineTimestamp != 0;

    /// <summary>Time left before the deadline (zero once past it); null without a deadline.</summary>
    public TimeSpan? Remaining =>
        HasDeadline ? TimeSpan.FromSeconds(Math.Max(0, (_deadlineTimestamp - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency)) : null;

    /// <summary>True once the deadline has passed.</summary>
    public bool IsExpired => HasDeadline && Stopwatch.GetTimestamp() >= _deadlineTimestamp;

    /// <summary>The budget of the scoring running on this thread (set by <see cref="RewardExtensions.ScoreWithin"/>).</summary>
    internal static ScoringBudget Current => _current;

    /// <summary>
    /// <paramref name="perCall"/> cut to the time left (at least a millisecond); the second value is true when the
    /// budget, not the per-call limit, set it.
    /// </summary>
    internal (TimeSpan Timeout, bool ByBudget) Clip(TimeSpan perCall)
    {
        if (Remaining is not { } left || left >= perCall) return (perCall, false);
        return (left < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : left, true);
    }

    /// <summary>Makes this budget <see cref="Current"/> on this thread until the scope is disposed.</summary>
    internal Scope Enter() => new(this);

    internal readonly struct Scope : IDisposable
    {
        private readonly ScoringBudget _previous;

        public Scope(ScoringBudget budget)
        {
            _previous = _current;
            _current = budget;
        }

        public void Dispose() => _current = _previous;
    }
}

/// <summary>A reward call stopped because the request's budget ran out (not the reward's own limit).</summary>
internal sealed class ScoringBudgetExceededException : Exception
{
    public ScoringBudgetExceededException(Exception inner) : base("the request's deadline passed while scoring", inner) { }
}
