using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Tests.Models;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>
/// The engine's scheduler: requests decoded together give exactly what they give alone; cancellation, admission and the
/// queue limit behave as documented. Mixed-batch identity is checked on the tabular model (exact logits) and on stories260K
/// with the F32 KV cache (llama.cpp's logits then agree across batch compositions to float rounding, ~4e-6).
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class SchedulerTests(SharedModel shared) : IDisposable
{
    private const string Prompt = "Once upon a time";
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly IReward _reward = new LexiconReward(new Dictionary<string, double>
    {
        ["happy"] = 1, ["fun"] = 1, ["smiled"] = 1, ["friends"] = 1, ["sad"] = -1, ["cried"] = -1, ["home"] = 0.5,
    });

    public void Dispose() => _kernels.Dispose();

    /// <summary>Eight requests of every strategy, different sizes, lengths and seeds.</summary>
    private List<DecodingRequest> Mix(string prompt, int maxTokens, KvCacheType kv) =>
    [
        new() { Prompt = prompt, Options = new GenerationOptions { Samples = 3, MaxTokens = maxTokens, Seed = 1 } },
        new() { Prompt = prompt, Options = new BestOfNOptions { N = 4, MaxTokens = maxTokens, Seed = 2, ReturnCandidates = true }, Reward = _reward },
        new() { Prompt = prompt, Options = new TokenwiseOptions { Candidates = 4, Beta = 0.5, MaxTokens = maxTokens - 1, Seed = 3 }, Reward = _reward },
        new() { Prompt = prompt, Options = new BlockwiseOptions { K = 3, BlockSize = 3, MaxTokens = maxTokens, Seed = 4 }, Reward = _reward },
        new() { Prompt = prompt, Options = new GenerationOptions { Samples = 1, MaxTokens = maxTokens / 2 + 1, Seed = 5 } },
        new() { Prompt = prompt, Options = new BestOfNOptions { N = 2, MaxTokens = maxTokens / 2 + 1, Seed = 6, Samples = 2 }, Reward = _reward },
        new() { Prompt = prompt, Options = new BlockwiseOptions { K = 5, BlockSize = 2, MaxTokens = maxTokens - 2, Seed = 7, Selection = BlockSelectionMode.Sample }, Reward = _reward },
        new() { Prompt = prompt, Options = new TokenwiseOptions { Candidates = 2, Beta = 2, MaxTokens = maxTokens, Seed = 8, Samples = 2 }, Reward = _reward },
    ];

    private async Task<List<IReadOnlyList<AlignedSample>>> Solo(ILanguageModel model, IEnumerable<DecodingRequest> requests, KvCacheType kv)
    {
        var results = new List<IReadOnlyList<AlignedSample>>();
        foreach (var r in requests)
        {
            // Each alone, on an engine of its own.
            using var engine = new DecodingEngine(model, _kernels, new EngineOptions { MaxSequences = 8, MaxSequenceLength = 64, KvCacheType = kv, PromptCacheEntries = 0 });
            results.Add(await engine.RunAsync(r));
        }
        return results;
    }

    private static void AssertSame(IReadOnlyList<AlignedSample> solo, IReadOnlyList<AlignedSample> mixed, string what)
    {
        Assert.Equal(solo.Count, mixed.Count);
        for (int i = 0; i < solo.Count; i++)
        {
            Assert.True(solo[i].Tokens.SequenceEqual(mixed[i].Tokens), $"{what} output {i}: [{string.Join(',', solo[i].Tokens)}] alone vs [{string.Join(',', mixed[i].Tokens)}] mixed");
            Assert.Equal(solo[i].Text, mixed[i].Text);
            Assert.Equal(solo[i].Reward, mixed[i].Reward, 12);
            Assert.Equal(solo[i].LogProb, mixed[i].LogProb, 3);
            Assert.Equal(solo[i].Finish, mixed[i].Finish);
        }
    }

    [Fact]
    public async Task TabularRequestsInOneBatchEqualTheirSoloRuns()
    {
        using var model = TabularModel.Load(TabularModelTests.ExamplePath());
        var mix = Mix("", 4, KvCacheType.F16);
        var solo = await Solo(model, mix, KvCacheType.F16);
        using var engine = new DecodingEngine(model, _kernels, new EngineOptions { MaxSequences = 32, MaxSequenceLength = 16 });
        var mixed = await Task.WhenAll(mix.Select(r => engine.RunAsync(r)));
        for (int i = 0; i < mix.Count; i++) AssertSame(solo[i], mixed[i], $"request {i} ({mix[i].Strategy})");
    }

    [Fact]
    public async Task GgufRequestsInOneBatchEqualTheirSoloRunsWithF32Cache()
    {
        var mix = Mix(Prompt, 24, KvCacheType.F32);
        var solo = await Solo(shared.Model, mix, KvCacheType.F32);
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 32, MaxSequenceLength = 64, KvCacheType = KvCacheType.F32 });
        var mixed = await Task.WhenAll(mix.Select(r => engine.RunAsync(r)));
        for (int i = 0; i < mix.Count; i++) AssertSame(solo[i], mixed[i], $"request {i} ({mix[i].Strategy})");
        // The batch really was shared: far fewer iterations than the solo runs' decode steps added up.
        Assert.True(engine.Status.Iterations < mixed.Sum(r => r.Sum(s => s.Tokens.Count)), $"{engine.Status.Iterations} iterations");
    }

    [Fact]
    public async Task CancellingOneOfEightLeavesTheOthersIdenticalAndFreesItsSequences()
    {
        var mix = Mix(Prompt, 24, KvCacheType.F32);
        var solo = await Solo(shared.Model, mix, KvCacheType.F32);
        const int capacity = 32;
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = capacity, MaxSequenceLength = 64, KvCacheType = KvCacheType.F32, PromptCacheEntries = 0 });
        using var cancel = new CancellationTokenSource();
        const int victim = 3; // blockwise: cancelled after its first block
        var tasks = mix.Select((r, i) => i == victim ? CancelAfterFirstBlock(engine, r, cancel) : engine.RunAsync(r)).ToArray();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => tasks[victim]);
        for (int i = 0; i < mix.Count; i++)
            if (i != victim) AssertSame(solo[i], await tasks[i], $"request {i} ({mix[i].Strategy})");

        // Every sequence is free again: a request that needs the engine's whole capacity is admitted and completes.
        var full = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = capacity, MaxTokens = 4 } });
        Assert.Equal(capacity, full.Count);
        Assert.Equal(0, engine.Status.LiveSequences);
    }

    private static async Task<IReadOnlyList<AlignedSample>> CancelAfterFirstBlock(DecodingEngine engine, DecodingRequest request, CancellationTokenSource cancel)
    {
        await foreach (var e in engine.StreamAsync(request, cancel.Token))
            if (e is TextAccepted) await cancel.CancelAsync();
        throw new InvalidOperationException("the cancelled request completed");
    }

    [Fact]
    public async Task GivenPromptTokensAreDecodedInsteadOfTokenizingThePromptAgain()
    {
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 4, MaxSequenceLength = 64, KvCacheType = KvCacheType.F32 });
        var options = new GenerationOptions { Samples = 2, MaxTokens = 12, Seed = 9 };
        var plain = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options });
        var given = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, PromptTokens = shared.Model.Tokenize(Prompt), Options = options });
        var other = await engine.RunAsync(new DecodingRequest { Prompt = "The dog", Options = options });
        // The tokens, not the text, are what is decoded: the tokens of "The dog" under the text of Prompt give "The dog"'s samples.
        var swapped = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, PromptTokens = shared.Model.Tokenize("The dog"), Options = options });
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(plain[i].Tokens, given[i].Tokens);
            Assert.Equal(other[i].Tokens, swapped[i].Tokens);
        }
        Assert.NotEqual(plain[0].Tokens, other[0].Tokens);
    }

    [Fact]
    public async Task AFullQueueIsRefusedAtOnceWithABusyError()
    {
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 4, MaxSequenceLength = 300, MaxQueuedRequests = 1 });
        using var stop = new CancellationTokenSource();
        var holder = new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = 4, MaxTokens = 280 } };
        // The first request holds every sequence; wait until it is running.
        var running = engine.StreamAsync(holder, stop.Token).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());
        var waiting = engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = 1, MaxTokens = 2 } }, stop.Token);
        var busy = await Assert.ThrowsAsync<EngineBusyException>(() =>
            engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = 1, MaxTokens = 2 } }));
        Assert.Contains("busy", busy.Message);
        Assert.Equal(1, busy.Limit);
        Assert.Equal(1, engine.Status.QueuedRequests);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await running.MoveNextAsync());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        await running.DisposeAsync();
    }

    [Fact]
    public async Task ARequestLargerThanTheEngineIsRefusedNamingTheLimit()
    {
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 4, MaxSequenceLength = 64 });
        var wide = await Assert.ThrowsAsync<RequestException>(() =>
            engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new BestOfNOptions { N = 5, MaxTokens = 8 }, Reward = _reward }));
        Assert.Contains("at most 4", wide.Message);
        var tooLong = await Assert.ThrowsAsync<RequestException>(() =>
            engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { MaxTokens = 100 } }));
        Assert.Contains("max sequence length of 64", tooLong.Message);
        var noReward = await Assert.ThrowsAsync<ArgumentException>(() =>
            engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new BestOfNOptions { N = 2, MaxTokens = 8 } }));
        Assert.Contains("reward", noReward.Message);
    }

    [Fact]
    public async Task ARequestArrivingWhileOthersRunIsAdmittedAtTheNextIteration()
    {
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 8, MaxSequenceLength = 300 });
        using var stop = new CancellationTokenSource();
        var running = engine.StreamAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = 4, MaxTokens = 280 } }, stop.Token).GetAsyncEnumerator();
        for (int i = 0; i < 20; i++) Assert.True(await running.MoveNextAsync());
        var late = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = 4, MaxTokens = 3 } });
        Assert.All(late, s => Assert.True(s.QueuedIterations <= 1, $"waited {s.QueuedIterations} iterations"));
        await stop.CancelAsync();
        await running.DisposeAsync();
    }

    [Fact]
    public async Task AnIdenticalPromptIsServedFromThePromptCache()
    {
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 8, MaxSequenceLength = 64, KvCacheType = KvCacheType.F32 });
        var request = new DecodingRequest { Prompt = Prompt, Options = new BestOfNOptions { N = 3, MaxTokens = 16, Seed = 9 }, Reward = _reward };
        var first = (await engine.RunAsync(request)).Single();
        var second = (await engine.RunAsync(request)).Single();
        Assert.Equal(0, first.CachedPromptTokens);
        Assert.Equal(first.PromptTokens, second.CachedPromptTokens);
        Assert.True(first.PromptTokens > 1);
        Assert.Equal(first.Tokens, second.Tokens);
        Assert.Equal(first.PromptTokens, engine.Status.CachedPromptTokens);
    }

    [Fact]
    public async Task StopAsyncDrainsRunningRequestsAndRefusesNewOnes()
    {
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 4, MaxSequenceLength = 64 });
        var inFlight = engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = 2, MaxTokens = 32 } });
        var stopped = engine.StopAsync(TimeSpan.FromMinutes(1));
        await Assert.ThrowsAsync<EngineStoppingException>(() => engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { MaxTokens = 8 } }));
        Assert.Equal(2, (await inFlight).Count);
        await stopped;
    }
}
