using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Tests.Models;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>
/// The scoring stage (docs/architecture.md, "Scoring stage"): rewards and reward-backed values run beside the scheduler, a
/// request whose score is late waits alone (parked) while the others decode, and none of that changes an output.
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class ScoringStageTests(SharedModel shared) : IDisposable
{
    private const string Prompt = "Once upon a time";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60); // no await here waits longer
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly IReward _reward = new LexiconReward(new Dictionary<string, double>
    {
        ["happy"] = 1, ["fun"] = 1, ["smiled"] = 1, ["friends"] = 1, ["sad"] = -1, ["cried"] = -1, ["home"] = 0.5,
    });

    public void Dispose() => _kernels.Dispose();

    /// <summary>Every strategy whose scores go through the stage: values (token-wise, blockwise, rejection) and rewards.</summary>
    private List<DecodingRequest> Mix(string prompt, int maxTokens, KvCacheType kv) =>
    [
        new() { Prompt = prompt, Options = new TokenwiseOptions { Candidates = 4, Beta = 0.5, MaxTokens = maxTokens, Seed = 3, Samples = 2 }, Reward = _reward },
        new() { Prompt = prompt, Options = new BlockwiseOptions { K = 3, BlockSize = 3, MaxTokens = maxTokens, Seed = 4 }, Reward = _reward },
        new() { Prompt = prompt, Options = new RejectionOptions { N = 6, Alpha = 0.5, Every = 2, MaxTokens = maxTokens, Seed = 5, ReturnCandidates = true }, Reward = _reward },
        new() { Prompt = prompt, Options = new BestOfNOptions { N = 4, MaxTokens = maxTokens, Seed = 6, Samples = 2, ReturnCandidates = true }, Reward = _reward },
        new() { Prompt = prompt, Options = new SoftBestOfNOptions { N = 3, Lambda = 0.5, MaxTokens = maxTokens, Seed = 7 }, Reward = _reward },
        new() { Prompt = prompt, Options = new GenerationOptions { Samples = 2, MaxTokens = maxTokens, Seed = 8 } },
    ];

    private static void AssertSame(IReadOnlyList<AlignedSample> expected, IReadOnlyList<AlignedSample> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].Tokens.SequenceEqual(actual[i].Tokens), $"{what} output {i}: [{string.Join(',', expected[i].Tokens)}] vs [{string.Join(',', actual[i].Tokens)}]");
            Assert.Equal(expected[i].Text, actual[i].Text);
            Assert.Equal(expected[i].Reward, actual[i].Reward, 12);
            Assert.Equal(expected[i].Kl.Value, actual[i].Kl.Value, 9);
            Assert.Equal(expected[i].Finish, actual[i].Finish);
            Assert.Equal(expected[i].Candidates.Select(c => c.Reward), actual[i].Candidates.Select(c => c.Reward));
        }
    }

    private async Task<(IReadOnlyList<AlignedSample>[] Results, EngineStatus Status)> RunAll(ILanguageModel model, List<DecodingRequest> mix, TimeSpan patience,
        int maxLength, KvCacheType kv)
    {
        using var engine = new DecodingEngine(model, _kernels, new EngineOptions
        {
            MaxSequences = 32, MaxSequenceLength = maxLength, KvCacheType = kv, ScoringPatience = patience, PromptCacheEntries = 0,
        });
        var results = await Task.WhenAll(mix.Select(r => engine.RunAsync(r))).WaitAsync(Bound);
        return (results, engine.Status);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Parking_every_request_at_every_score_changes_no_output(bool gguf)
    {
        using var tabular = gguf ? null : TabularModel.Load(TabularModelTests.ExamplePath());
        ILanguageModel model = gguf ? shared.Model : tabular!;
        var kv = gguf ? KvCacheType.F32 : KvCacheType.F16;
        var mix = Mix(gguf ? Prompt : "", gguf ? 16 : 4, kv);
        int length = gguf ? 64 : 16;

        // Patience 10 s: every lexicon score comes back in step. Patience 0: every reward-backed value is late, so every
        // request waits alone for each of its values while the others go on, and resumes from what it kept of the decode.
        var (inStep, calm) = await RunAll(model, mix, TimeSpan.FromSeconds(10), length, kv);
        var (parked, busy) = await RunAll(model, mix, TimeSpan.Zero, length, kv);

        Assert.True(calm.ScoringJobs > 0 && calm.ScoringParked == 0, $"in step: {calm.ScoringJobs} jobs, {calm.ScoringParked} parked");
        Assert.True(busy.ScoringParked > 0, $"patience 0 parked nothing ({busy.ScoringJobs} jobs)");
        for (int i = 0; i < mix.Count; i++) AssertSame(inStep[i], parked[i], $"request {i} ({mix[i].Strategy})");
    }

    /// <summary>A reward the test holds closed until it says so: a stand-in for a slow reward model, without timing.</summary>
    private sealed class GatedReward(IReward inner) : IReward
    {
        public ManualResetEventSlim Gate { get; } = new(false);
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public string Description => "gated(" + inner.Description + ")";
        public bool NeedsHiddenState => false;

        public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
        {
            Entered.TrySetResult();
            if (!Gate.Wait(Bound)) throw new TimeoutException("the test never opened the gate");
            inner.Score(candidates, rewards);
        }
    }

    [Theory]
    [InlineData("tokenwise")]
    [InlineData("bon")]
    [InlineData("blockwise")]
    public async Task A_request_whose_reward_never_returns_does_not_hold_the_others(string strategy)
    {
        var gated = new GatedReward(_reward);
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 16, MaxSequenceLength = 64 });
        DecodingOptions options = strategy switch
        {
            "tokenwise" => new TokenwiseOptions { Candidates = 4, MaxTokens = 8, Seed = 1 },
            "bon" => new BestOfNOptions { N = 4, MaxTokens = 8, Seed = 1 },
            _ => new BlockwiseOptions { K = 3, BlockSize = 4, MaxTokens = 8, Seed = 1 },
        };
        var slow = engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options, Reward = gated });
        await gated.Entered.Task.WaitAsync(Bound);

        // The slow request is inside its reward. Before the scoring stage the scheduler's thread was, and nothing else moved.
        var others = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => engine.RunAsync(new DecodingRequest
        {
            Prompt = Prompt, Options = new BestOfNOptions { N = 2, MaxTokens = 12, Seed = (ulong)(10 + i) }, Reward = _reward,
        }))).WaitAsync(Bound);
        Assert.All(others, o => Assert.NotEmpty(o.Single().Tokens));
        Assert.False(slow.IsCompleted, "the gated request finished without its reward");

        gated.Gate.Set();
        var result = (await slow.WaitAsync(Bound)).Single();
        Assert.NotEmpty(result.Tokens);
        Assert.Equal(0, engine.Status.LiveSequences);
    }

    [Fact]
    public async Task Cancelling_a_request_that_waits_for_its_score_ends_it_at_once_and_frees_its_sequences()
    {
        var gated = new GatedReward(_reward);
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 8, MaxSequenceLength = 64 });
        using var cancel = new CancellationTokenSource();
        var slow = engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new TokenwiseOptions { Candidates = 4, MaxTokens = 8 }, Reward = gated }, cancel.Token);
        await gated.Entered.Task.WaitAsync(Bound);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => slow.WaitAsync(Bound));

        // Its sequences are free while its reward still runs: a request for the whole capacity is admitted and completes.
        var full = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new GenerationOptions { Samples = 8, MaxTokens = 4 } }).WaitAsync(Bound);
        Assert.Equal(8, full.Count);
        gated.Gate.Set();
    }

    [Fact]
    public async Task A_failing_reward_fails_its_own_request_only()
    {
        var failing = new CallbackReward(_ => throw new InvalidOperationException("reward model offline"), "offline");
        using var engine = new DecodingEngine(shared.Model, _kernels, new EngineOptions { MaxSequences = 16, MaxSequenceLength = 64 });
        var bad = engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new TokenwiseOptions { Candidates = 4, MaxTokens = 8 }, Reward = failing });
        var good = engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = new BestOfNOptions { N = 4, MaxTokens = 8 }, Reward = _reward });
        var e = await Assert.ThrowsAsync<TiltException>(() => bad.WaitAsync(Bound));
        Assert.Contains("reward model offline", e.Message);
        Assert.NotEmpty((await good.WaitAsync(Bound)).Single().Tokens);
        Assert.Equal(0, engine.Status.LiveSequences);
    }
}
