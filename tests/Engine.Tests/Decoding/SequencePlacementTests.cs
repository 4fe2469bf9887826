using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Text;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>
/// Dense sequence ids (docs/architecture.md, "Sequence ids"): llama.cpp evaluates every run of consecutive sequence ids of a
/// decode as its own micro-batch with the per-sequence KV layout, so the scheduler hands out the lowest free ids, orders the
/// decode by id and moves sequences into holes when the ids fragment. Moving must never change an output.
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class SequencePlacementTests(SharedModel shared) : IDisposable
{
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);

    public void Dispose() => _kernels.Dispose();

    [Fact]
    public void RunsCountGapsInAscendingIds()
    {
        Assert.Equal(0, SequencePlacement.Runs([]));
        Assert.Equal(1, SequencePlacement.Runs([3]));
        Assert.Equal(1, SequencePlacement.Runs([0, 1, 2, 3]));
        Assert.Equal(3, SequencePlacement.Runs([0, 2, 4]));
        Assert.Equal(2, SequencePlacement.Runs([0, 1, 5, 6, 7]));
    }

    [Fact]
    public void FreeIdsAreTakenLowestFirstAndTheCacheTakesTheHighest()
    {
        var p = new SequencePlacement(8);
        Assert.Equal([0, 1, 2], new[] { p.Take(), p.Take(), p.Take() });
        Assert.Equal(7, p.TakeHighest());
        p.Return(1);
        Assert.Equal(1, p.Take()); // the hole is filled before anything above it
        Assert.Equal(3, p.Take());
        Assert.Equal(3, p.Free);
        Assert.Throws<InvalidOperationException>(() => p.Return(5)); // not held
    }

    [Fact]
    public void CompactionMovesTheFewestSequencesIntoOneRunAndKeepsTheirKv()
    {
        using var model = Loop();
        using var kv = model.CreateSession(new SessionOptions { MaxSequences = 8, MaxSequenceLength = 8 });
        var p = new SequencePlacement(8);
        for (int i = 0; i < 8; i++) Assert.Equal(i, p.Take());
        // Decoded: 0, 1, 3, 6 (each holding a prompt of its own length); 2 is held but not decoded; 4, 5, 7 are free.
        int[] decoded = [0, 1, 3, 6];
        foreach (int s in decoded) kv.Prefill(s, Enumerable.Repeat(1, s + 1).ToArray());
        kv.Prefill(2, [1, 1, 1]);
        foreach (int s in new[] { 4, 5, 7 })
            p.Return(s);

        int moved = p.Compact(decoded, kv);
        // Windows 0..3 and 3..6 both cost two moves; the lower wins: the held sequence 2 makes room (to the highest free
        // place, 7) and 6 moves into its place.
        Assert.Equal(2, moved);
        var physical = decoded.Select(p.Physical).Order().ToArray();
        Assert.Equal([0, 1, 2, 3], physical);
        Assert.Equal(7, p.Physical(2));
        foreach (int s in decoded) Assert.Equal(s + 1, kv.Length(p.Physical(s))); // each KV travelled with its id
        Assert.Equal(3, kv.Length(p.Physical(2)));
        Assert.Equal(0, kv.Length(6));
        // The ids behind the vacated places are still free and empty: taking one gives the lowest free place.
        Assert.Equal(3, p.Free);
        Assert.Equal(4, p.Physical(p.Take()));
        Assert.Equal(0, p.Compact(decoded, kv)); // already one run
    }

    [Fact]
    public void WithoutAFreePlaceHeldSequencesCannotMakeRoom()
    {
        using var model = Loop();
        using var kv = model.CreateSession(new SessionOptions { MaxSequences = 4, MaxSequenceLength = 8 });
        var p = new SequencePlacement(4);
        for (int i = 0; i < 4; i++) p.Take();
        foreach (int s in new[] { 0, 1, 2, 3 }) kv.Prefill(s, [1]);
        Assert.Equal(0, p.Compact([0, 2], kv)); // 1 and 3 are held and nothing is free: no window can be cleared
        Assert.Equal(0, p.Physical(0));
        Assert.Equal(2, p.Physical(2));
    }

    /// <summary>
    /// The scenario: eight requests fill the engine, every second one finishes early, two new ones take the lowest
    /// holes; without compaction the next decodes span three runs of ids, with it exactly one, and the long requests' outputs
    /// are the same either way (and equal their solo runs: the tabular model's logits are exact).
    /// </summary>
    [Fact]
    public async Task GapsLeftByFinishedRequestsAreClosedBeforeTheNextDecode()
    {
        using var tabular = Loop();
        var compacted = await Fragment(tabular, compact: true);
        var scattered = await Fragment(tabular, compact: false);

        // At most one run per decode with compaction (no sequence is held without being decoded here).
        Assert.All(compacted.Decodes, ids => Assert.Equal(1, SequencePlacement.Runs(ids)));
        Assert.True(compacted.Moves >= 2, $"{compacted.Moves} moves");
        // The same workload without it: the decodes after the second wave fragment (so this test can fail).
        Assert.Contains(scattered.Decodes, ids => SequencePlacement.Runs(ids) >= 3);
        Assert.Equal(0, scattered.Moves);
        Assert.Equal(compacted.Outputs.Count, scattered.Outputs.Count);
        for (int i = 0; i < compacted.Outputs.Count; i++)
            Assert.Equal(scattered.Outputs[i], compacted.Outputs[i]);
    }

    /// <summary>The same scenario on stories260K with the F32 KV cache: moved sequences decode bit-identically.</summary>
    [Fact]
    public async Task MovingGgufSequencesChangesNoOutput()
    {
        var compacted = await Fragment(shared.Model, compact: true, kv: KvCacheType.F32);
        var scattered = await Fragment(shared.Model, compact: false, kv: KvCacheType.F32);
        Assert.True(compacted.Moves >= 2, $"{compacted.Moves} moves");
        Assert.All(compacted.Decodes, ids => Assert.Equal(1, SequencePlacement.Runs(ids)));
        Assert.Equal(compacted.Outputs.Count, scattered.Outputs.Count);
        for (int i = 0; i < compacted.Outputs.Count; i++)
            Assert.Equal(scattered.Outputs[i], compacted.Outputs[i]);
    }

    private sealed record FragmentRun(List<int[]> Decodes, long Moves, List<string> Outputs);

    /// <summary>
    /// 8 requests x 2 samples fill 16 sequences; the even ones stop after 2 tokens. Two holds make the schedule deterministic
    /// without sleeping: the first prefill waits until all 8 requests are queued (so the first wave takes ids 0..15 in
    /// order, before any of it can finish), and the first 8-row decode after the full wave (only the odd requests left)
    /// waits until two new 2-sample requests are queued, so they are admitted into the holes while the odd ones still run.
    /// </summary>
    private async Task<FragmentRun> Fragment(ILanguageModel inner, bool compact, KvCacheType kv = KvCacheType.F16)
    {
        bool wave = false, held = false;
        using var model = new GatedModel(inner, rows =>
        {
            wave |= rows > 8;
            bool hold = wave && rows == 8 && !held;
            held |= hold;
            return hold;
        });
        using var engine = new DecodingEngine(model, _kernels, new EngineOptions
        {
            MaxSequences = 16, MaxSequenceLength = 48, PromptCacheEntries = 0, CompactSequences = compact, KvCacheType = kv,
        });
        string prompt = inner is TabularModel ? "a" : "Once upon a time";
        DecodingRequest Request(int i, int tokens) => new()
        {
            Prompt = prompt,
            Options = new GenerationOptions { Samples = 2, MaxTokens = tokens, Seed = (ulong)(100 + i) },
        };
        var first = Enumerable.Range(0, 8).Select(i => engine.RunAsync(Request(i, i % 2 == 0 ? 2 : 24))).ToArray();
        Assert.True(await model.PrefillHeld.WaitAsync(TimeSpan.FromSeconds(60)), "the first prefill never came");
        model.ReleasePrefill();
        await Task.WhenAll(first.Where((_, i) => i % 2 == 0));
        Assert.True(await model.Held.WaitAsync(TimeSpan.FromSeconds(60)), "no 8-row decode after the first wave");
        var second = Enumerable.Range(8, 2).Select(i => engine.RunAsync(Request(i, 16))).ToArray();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (engine.Status.QueuedRequests < 2) // queued behind the held decode
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(60)) { model.Release(); Assert.Fail("the second wave was never queued"); }
            await Task.Yield();
        }
        model.Release();
        var all = await Task.WhenAll(first.Concat(second));
        var outputs = all.SelectMany(r => r.Select(s => string.Join(',', s.Tokens))).ToList();
        List<int[]> decodes;
        lock (model.Decodes) decodes = [.. model.Decodes];
        // Only the decodes after the second wave was admitted: rows of the odd requests plus the new ones.
        var after = decodes.SkipWhile(ids => ids.Length <= 8).SkipWhile(ids => ids.Length != 8).Skip(1).Where(ids => ids.Length > 8).ToList();
        Assert.NotEmpty(after);
        return new FragmentRun(after, engine.Status.SequenceMoves, outputs);
    }

    /// <summary>A two-token loop with no reachable EOS: every sample runs to its max tokens.</summary>
    private static TabularModel Loop()
    {
        string path = Path.Combine(Path.GetTempPath(), $"tilt-loop-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """
            {"format":"tilt-tabular/1","vocabulary":["<eos>","a","b"],"eos":"<eos>","start":{"a":0.5,"b":0.5},
             "transitions":{"a":{"a":0.5,"b":0.5},"b":{"a":0.3,"b":0.7}}}
            """);
        try
        {
            return TabularModel.Load(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// A model whose session records the physical sequence ids of every batched step and holds every step that matches
    /// <c>hold</c> until <see cref="Release"/> (the test's way to act between two scheduler iterations without sleeping).
    /// </summary>
    private sealed class GatedModel(ILanguageModel inner, Func<int, bool> hold) : ILanguageModel
    {
        private readonly SemaphoreSlim _held = new(0);
        private readonly SemaphoreSlim _release = new(0);
        private readonly Func<int, bool> _hold = hold;
        private readonly SemaphoreSlim _prefillHeld = new(0);
        private readonly SemaphoreSlim _prefillRelease = new(0);
        private int _prefills;

        /// <summary>Released when the first prefill waits; <see cref="ReleasePrefill"/> lets it go.</summary>
        public SemaphoreSlim PrefillHeld => _prefillHeld;
        public void ReleasePrefill() => _prefillRelease.Release();

        public List<int[]> Decodes { get; } = [];
        public SemaphoreSlim Held => _held;
        public void Release() => _release.Release();

        public ModelInfo Info => inner.Info;
        public int[] Tokenize(string text, bool addBos = true) => inner.Tokenize(text, addBos);
        public ITextDecoder CreateTextDecoder() => inner.CreateTextDecoder();
        public string Detokenize(ReadOnlySpan<int> tokens) => inner.Detokenize(tokens);
        public IDecodingSession CreateSession(SessionOptions options) => new Session(this, inner.CreateSession(options));
        public void Dispose() { } // the inner model belongs to the caller

        private sealed class Session(GatedModel owner, IDecodingSession s) : IDecodingSession
        {
            public int MaxSequences => s.MaxSequences;
            public int MaxSequenceLength => s.MaxSequenceLength;
            public int VocabularySize => s.VocabularySize;
            public int HiddenSize => s.HiddenSize;
            public int OutputRows => s.OutputRows;
            public ReadOnlySpan<float> Logits => s.Logits;
            public ReadOnlySpan<float> Hidden => s.Hidden;
            public int Length(int sequence) => s.Length(sequence);
            public void Prefill(int sequence, ReadOnlySpan<int> tokens)
            {
                if (owner._prefills++ == 0)
                {
                    owner._prefillHeld.Release();
                    if (!owner._prefillRelease.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("the test never released the first prefill");
                }
                s.Prefill(sequence, tokens);
            }
            public void CopySequence(int source, int destination) => s.CopySequence(source, destination);
            public void RemoveSequence(int sequence) => s.RemoveSequence(sequence);
            public void Dispose() => s.Dispose();

            public void Step(ReadOnlySpan<int> sequences, ReadOnlySpan<int> tokens)
            {
                lock (owner.Decodes) owner.Decodes.Add(sequences.ToArray());
                if (owner._hold(sequences.Length))
                {
                    owner._held.Release();
                    if (!owner._release.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("the test never released the held decode");
                }
                s.Step(sequences, tokens);
            }
        }
    }
}
