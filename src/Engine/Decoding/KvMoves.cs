using Tilt.Engine.Models;

namespace Tilt.Engine.Decoding;

/// <summary>
/// The KV moves a run plans in a hook (fork a sequence into another, clear one): the run states them, the scheduler
/// applies them in order right after the hook, before anything reads or decodes the KV again. Runs never touch the
/// session: the scheduler owns every resource and is the one place that changes the KV (and counts it).
/// </summary>
internal sealed class KvMoves
{
    private readonly List<(int Source, int Destination)> _moves = []; // Source < 0: clear Destination

    /// <summary>Moves applied so far (copies and clears).</summary>
    public long Applied { get; private set; }

    /// <summary>Plans a copy of <paramref name="source"/>'s KV into <paramref name="destination"/> (a fork: a prefix shared).</summary>
    public void Copy(int source, int destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(source);
        ArgumentOutOfRangeException.ThrowIfNegative(destination);
        _moves.Add((source, destination));
    }

    /// <summary>Plans clearing <paramref name="sequence"/>'s KV (it stays the run's, empty).</summary>
    public void Clear(int sequence)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sequence);
        _moves.Add((-1, sequence));
    }

    /// <summary>The scheduler's side: applies the planned moves in the order they were planned.</summary>
    public void Apply(IDecodingSession session)
    {
        foreach (var (source, destination) in _moves)
        {
            if (source < 0) session.RemoveSequence(destination);
            else session.CopySequence(source, destination);
        }
        Applied += _moves.Count;
        _moves.Clear();
    }

    /// <summary>Drops what a failed hook planned (its run is released; its sequences are cleared with it).</summary>
    public void Discard() => _moves.Clear();
}

/// <summary>What a run reads of the last decode: its rows' next-token logits and hidden states ([rows, vocab], [rows, d]).</summary>
internal sealed class StepOutputs(IDecodingSession session)
{
    public ReadOnlySpan<float> Logits => session.Logits;

    public ReadOnlySpan<float> Hidden => session.Hidden;
}
