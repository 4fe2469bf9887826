using System.Runtime.ExceptionServices;
using Tilt.Engine.Rewards;

namespace Tilt.Interop;

/// <summary>
/// A host reward whose calls always run on the thread that called tilt_request_run (tilt.h promises hosts their callbacks
/// there: thread-local state, Python thread states). The shared engine scores on its scheduler's thread, so each call is
/// posted to the caller's pump and waited for; that thread is pumping (or inside one of its own stream callbacks, which
/// return) for as long as its run lasts.
/// </summary>
internal sealed class CallerThreadReward(IReward inner, SynchronizationContext caller) : IReward
{
    public string Description => inner.Description;

    public bool NeedsHiddenState => inner.NeedsHiddenState;

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        if (SynchronizationContext.Current == caller)
        {
            inner.Score(candidates, rewards);
            return;
        }
        var results = new double[candidates.Count];
        ExceptionDispatchInfo? failure = null;
        using var done = new ManualResetEventSlim();
        caller.Post(_ =>
        {
            try
            {
                inner.Score(candidates, results);
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                done.Set();
            }
        }, null);
        done.Wait();
        failure?.Throw();
        results.CopyTo(rewards);
    }
}
