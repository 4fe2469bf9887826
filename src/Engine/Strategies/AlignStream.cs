namespace Tilt.Engine.Strategies;

/// <summary>Helpers shared by the strategies' streams.</summary>
internal static class AlignStream
{
    /// <summary>The non-streaming call: every completed output, in sample order.</summary>
    public static async Task<IReadOnlyList<AlignedSample>> CollectAsync(IAsyncEnumerable<AlignEvent> events)
    {
        var results = new List<AlignedSample>();
        await foreach (var e in events.ConfigureAwait(false))
            if (e is SampleCompleted c) results.Add(c.Result);
        return results;
    }
}
