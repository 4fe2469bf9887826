namespace Tilt.Engine.Decoding;

/// <summary>The scheduler's ownership of sequences: admission, grants, releases, requeueing. No run takes or frees one itself.</summary>
internal sealed partial class Scheduler
{
    /// <summary>Admits waiting requests in arrival order while their sequences are free (no overtaking: no starvation).</summary>
    private void Admit()
    {
        while (_queue.First is { } node)
        {
            var run = node.Value;
            if (run.Cancellation.IsCancellationRequested)
            {
                // Cancelled while waiting (a requeued run's cancellation does not remove it from the queue itself).
                _queue.RemoveFirst();
                run.Complete(new OperationCanceledException(run.Cancellation));
                continue;
            }
            int needed = run.SequencesNeeded;
            while (_placement.Free < needed && _prompts.EvictOne() is { } freed) _placement.Return(freed);
            if (_placement.Free < needed) return;
            _queue.RemoveFirst();
            var sequences = new int[needed];
            for (int i = 0; i < needed; i++) sequences[i] = _placement.Take();
            run.Admit(sequences, Interlocked.Read(ref _iterations));
            _running.Add(run);
        }
    }

    // The prompt cache's sequences are held but never decoded: they take the highest free places.
    private int? SpareSequence() => _placement.Free > 0 ? _placement.TakeHighest() : null;

    /// <summary>
    /// Grants the sequences runs asked for (<see cref="RequestRun.SequencesWanted"/>) when that many are free and nobody is
    /// queued (waiting requests come first); a run that cannot have them goes back to the end of the queue with nothing.
    /// </summary>
    private void GrantWanted()
    {
        for (int i = _running.Count - 1; i >= 0; i--)
        {
            var run = _running[i];
            int count = run.SequencesWanted;
            if (count == 0) continue;
            bool queued;
            lock (_gate) queued = _queue.Count > 0;
            if (!queued)
                while (_placement.Free < count && _prompts.EvictOne() is { } freed) _placement.Return(freed);
            if (queued || _placement.Free < count)
            {
                Requeue(run);
                continue;
            }
            var taken = new int[count];
            for (int j = 0; j < count; j++) taken[j] = _placement.Take();
            run.Reassign([.. run.Sequences, .. taken]);
        }
    }

    /// <summary>Frees the sequences runs released during a hook (KV removed; admissible to others at the next iteration).</summary>
    private void FreeReleased()
    {
        foreach (var run in _running)
        {
            if (run.Released.Count == 0) continue;
            foreach (int s in run.Released)
            {
                _session.RemoveSequence(s);
                _placement.Return(s);
            }
            run.Reassign(run.Sequences.Except(run.Released).ToArray());
            run.Released.Clear();
        }
    }

    /// <summary>Moves a run from running to the end of the queue, freeing all its sequences; it is admitted again with a full set.</summary>
    private void Requeue(RequestRun run)
    {
        _running.Remove(run);
        foreach (int s in run.Sequences)
        {
            _session.RemoveSequence(s);
            _placement.Return(s);
        }
        run.Admit([], run.AdmittedIteration);
        lock (_gate) _queue.AddLast(run);
    }

    /// <summary>Frees a request's sequences (and their KV cells) and ends its event stream.</summary>
    private void Release(RequestRun run, Exception? error)
    {
        if (!_running.Remove(run)) return;
        foreach (int s in run.Sequences)
        {
            _session.RemoveSequence(s);
            _placement.Return(s);
        }
        run.Complete(error);
        lock (_gate)
        {
            if (!_accepting && _queue.Count == 0 && _running.Count == 0) _idle.TrySetResult();
        }
    }
}
