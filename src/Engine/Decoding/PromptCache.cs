using Tilt.Engine.Models;

namespace Tilt.Engine.Decoding;

/// <summary>A prompt's state after prefill: next-token logits [vocab], final hidden state [d], and how many tokens came from the cache.</summary>
internal sealed record PromptState(float[] Logits, float[] Hidden, int CachedTokens);

/// <summary>
/// Keeps the KV of recent prompts in spare sequences, so a request whose prompt was seen before (best-of-n across
/// requests, evaluation sweeps, a common prompt) copies that cache instead of prefilling it again. Entries live only in
/// sequences nobody else needs: the scheduler evicts them (least recently used first) before it would make a request wait.
/// Only identical prompts hit: with llama.cpp's per-sequence KV a partial sequence copy aborts the process, so a
/// shared-prefix hit would need a whole copy plus a truncation; identical prompts are the common case here.
/// </summary>
internal sealed class PromptCache
{
    private readonly IDecodingSession _session;
    private readonly int _capacity;
    private readonly Func<int?> _spare;
    private readonly KvMoves? _moves;
    private readonly List<Entry> _entries = [];
    private long _clock;
    private long _prefillTicks;

    /// <param name="spare">The scheduler's hand-over of a free sequence for a new entry (null: none is free).</param>
    public PromptCache(IDecodingSession session, int capacity, Func<int?> spare, KvMoves? moves = null)
    {
        _session = session;
        _moves = moves;
        _capacity = capacity;
        _spare = spare;
    }

    /// <summary>Sequences the cache holds (each can be evicted on demand).</summary>
    public int Count => _entries.Count;

    /// <summary>Stopwatch ticks spent in prefill decodes so far.</summary>
    public long PrefillTicks => Interlocked.Read(ref _prefillTicks);

    /// <summary>Prompt tokens served from the cache so far.</summary>
    public long HitTokens { get; private set; }

    /// <summary>
    /// Puts <paramref name="tokens"/> into the empty <paramref name="sequence"/>: a copy of a cached prompt, or a prefill.
    /// After a prefill the prompt is kept in a spare sequence the scheduler hands over (none free: not cached).
    /// </summary>
    public PromptState Load(int sequence, int[] tokens)
    {
        _moves?.Apply(_session); // what the run planned before loading (clearing its sequences) comes first
        foreach (var e in _entries)
        {
            if (!e.Tokens.AsSpan().SequenceEqual(tokens)) continue;
            _session.CopySequence(e.Sequence, sequence);
            e.LastUsed = ++_clock;
            HitTokens += tokens.Length;
            return new PromptState(e.Logits, e.Hidden, tokens.Length);
        }

        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        _session.Prefill(sequence, tokens);
        Interlocked.Add(ref _prefillTicks, System.Diagnostics.Stopwatch.GetTimestamp() - started);
        var state = new PromptState(_session.Logits[.._session.VocabularySize].ToArray(), _session.Hidden[.._session.HiddenSize].ToArray(), 0);
        if (_capacity > 0)
        {
            // A full cache recycles its least recently used entry's sequence for the new prompt.
            int? target = _entries.Count < _capacity ? _spare() : EvictOne();
            if (target is { } free)
            {
                _session.CopySequence(sequence, free);
                _entries.Add(new Entry(tokens, free, state.Logits, state.Hidden) { LastUsed = ++_clock });
            }
        }
        return state;
    }

    /// <summary>Drops the least recently used entry; returns its sequence (now empty) or null when the cache is empty.</summary>
    public int? EvictOne()
    {
        if (_entries.Count == 0) return null;
        var oldest = _entries.MinBy(e => e.LastUsed)!;
        _entries.Remove(oldest);
        _session.RemoveSequence(oldest.Sequence);
        return oldest.Sequence;
    }

    private sealed class Entry(int[] tokens, int sequence, float[] logits, float[] hidden)
    {
        public int[] Tokens { get; } = tokens;
        public int Sequence { get; } = sequence;
        public float[] Logits { get; } = logits;
        public float[] Hidden { get; } = hidden;
        public long LastUsed { get; set; }
    }
}
