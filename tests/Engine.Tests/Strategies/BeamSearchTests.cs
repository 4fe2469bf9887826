using System.Text;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Requests;
using Tilt.Engine.Rewards;
using Tilt.Engine.Tests.Models;
using Tilt.Kernels;

namespace Tilt.Engine.Tests.Strategies;

/// <summary>
/// Reward-guided beam search over blocks: one beam is blockwise CD draw for draw; a single block of the whole response is
/// best-of-K; streamed text is the output's; a beam decoded among other requests equals its solo run.
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class BeamSearchTests(SharedModel shared) : IDisposable
{
    private const string Prompt = "Once upon a time";
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly TabularModel _tabular = TabularModel.Load(TabularModelTests.ExamplePath());
    private readonly IReward _reward = new LexiconReward(new Dictionary<string, double>
    {
        ["happy"] = 1, ["fun"] = 1, ["smiled"] = 1, ["friends"] = 1, ["sad"] = -1, ["cried"] = -1, ["home"] = 0.5, ["dog"] = 0.25,
    });

    public void Dispose() => _kernels.Dispose();

    private static void AssertSame(IReadOnlyList<AlignedSample> expected, IReadOnlyList<AlignedSample> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].Tokens.SequenceEqual(actual[i].Tokens),
                $"{what} output {i}: [{string.Join(',', expected[i].Tokens)}] vs [{string.Join(',', actual[i].Tokens)}]");
            Assert.Equal(expected[i].Text, actual[i].Text);
            Assert.Equal(expected[i].Reward, actual[i].Reward, 12);
            // log p agrees to llama.cpp's rounding across batch layouts (~1e-6 with the F32 cache), the tokens exactly.
            Assert.Equal(expected[i].LogProb, actual[i].LogProb, 4);
            Assert.Equal(expected[i].Kl.Value, actual[i].Kl.Value, 4);
            Assert.Equal(expected[i].Finish, actual[i].Finish);
        }
    }

    [Theory]
    [InlineData(false, 4, 2, 1UL)]
    [InlineData(false, 3, 1, 2UL)]
    [InlineData(true, 4, 3, 3UL)]
    [InlineData(true, 6, 4, 4UL)]
    public async Task One_beam_is_blockwise_cd_draw_for_draw(bool gguf, int k, int block, ulong seed)
    {
        ILanguageModel model = gguf ? shared.Model : _tabular;
        string prompt = gguf ? Prompt : "";
        int maxTokens = gguf ? 20 : 5;
        var kv = gguf ? KvCacheType.F32 : KvCacheType.F16;
        var blockwise = await OwnEngine.Run(model, _kernels, prompt,
            new BlockwiseOptions { K = k, BlockSize = block, MaxTokens = maxTokens, Seed = seed, Samples = 3 }, _reward, kv: kv);
        var beam = await OwnEngine.Run(model, _kernels, prompt,
            new BeamOptions { Beams = 1, K = k, BlockSize = block, MaxTokens = maxTokens, Seed = seed, Samples = 3 }, _reward, kv: kv);
        AssertSame(blockwise, beam, $"K={k} M={block}");
        Assert.Equal(blockwise.Select(s => s.KlBound!.Value), beam.Select(s => s.KlBound!.Value));
    }

    [Theory]
    [InlineData(2, 4)]
    [InlineData(4, 8)]
    public async Task A_single_block_of_the_whole_response_is_best_of_k(int beams, int k)
    {
        // With M >= max tokens every block of the first step finishes, so the kept beams are the best of K candidates and the
        // output is the best of those: best-of-K's reward on the very same draws (the blocks use blockwise CD's RNG rows).
        for (ulong seed = 1; seed <= 6; seed++)
        {
            var blockwise = await OwnEngine.Run(shared.Model, _kernels, Prompt,
                new BlockwiseOptions { K = k, BlockSize = 16, MaxTokens = 16, Seed = seed }, _reward, kv: KvCacheType.F32);
            var beam = await OwnEngine.Run(shared.Model, _kernels, Prompt,
                new BeamOptions { Beams = beams, K = k, BlockSize = 16, MaxTokens = 16, Seed = seed }, _reward, kv: KvCacheType.F32);
            Assert.Equal(blockwise[0].Reward, beam[0].Reward, 12);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData(" the")]
    public async Task Streamed_text_is_the_output_and_every_kept_beam_ranks_below_the_winner(string? stop)
    {
        var options = new BeamOptions
        {
            Beams = 3, K = 6, BlockSize = 3, MaxTokens = 24, Seed = 11, Samples = 2,
            Stop = stop is null ? null : new StopSequences { Strings = [stop] },
        };
        var streamed = new Dictionary<int, StringBuilder>();
        var results = new List<AlignedSample>();
        var scored = new List<CandidatesScored>();
        await foreach (var e in OwnEngine.Stream(shared.Model, _kernels, Prompt, options, _reward, kv: KvCacheType.F32))
        {
            if (e is TextAccepted t) (streamed.TryGetValue(t.Sample, out var sb) ? sb : streamed[t.Sample] = new StringBuilder()).Append(t.TextDelta);
            if (e is SampleCompleted done) results.Add(done.Result);
            if (e is CandidatesScored c) scored.Add(c);
        }
        Assert.Equal(2, results.Count);
        foreach (var r in results)
        {
            Assert.Equal(r.Text, streamed[r.Index].ToString());
            if (stop is not null) Assert.DoesNotContain(stop, r.Text);
            Assert.Equal(r.Reward, _reward.Score(new RewardInput { Prompt = Prompt, Text = r.Text, Tokens = r.Tokens, IsFinished = r.Finish is AlignFinish.Eos or AlignFinish.Stop }), 12);
        }
        // Every step scored K blocks of the live beams plus the finished beams still kept.
        Assert.All(scored, c => Assert.InRange(c.Scores.Count, 2, options.K + options.Beams));
    }

    [Fact]
    public async Task A_beam_among_other_requests_equals_its_solo_run()
    {
        var beam = new DecodingRequest { Prompt = "", Options = new BeamOptions { Beams = 2, K = 4, BlockSize = 2, MaxTokens = 5, Seed = 5, Samples = 2 }, Reward = _reward };
        var solo = await DecodingEngine.RunOnOwnEngineAsync(_tabular, _kernels, beam);
        using var engine = new DecodingEngine(_tabular, _kernels, new EngineOptions { MaxSequences = 32, MaxSequenceLength = 16 });
        var others = new[]
        {
            new DecodingRequest { Prompt = "", Options = new BlockwiseOptions { K = 3, BlockSize = 2, MaxTokens = 5, Seed = 6 }, Reward = _reward },
            new DecodingRequest { Prompt = "", Options = new BestOfNOptions { N = 5, MaxTokens = 5, Seed = 7 }, Reward = _reward },
        };
        var all = await Task.WhenAll(new[] { beam }.Concat(others).Select(r => engine.RunAsync(r)));
        AssertSame(solo, all[0], "beam among others");
        Assert.Equal(0, engine.Status.LiveSequences);
    }

    [Fact]
    public async Task Per_token_log_probabilities_and_a_deadline_come_back_like_blockwise_cds()
    {
        var options = new BeamOptions { Beams = 2, K = 4, BlockSize = 4, MaxTokens = 24, Seed = 9, Logprobs = true };
        var s = (await OwnEngine.Run(shared.Model, _kernels, Prompt, options, _reward, kv: KvCacheType.F32)).Single();
        Assert.NotNull(s.TokenLogProbs);
        Assert.Equal(s.Tokens.Count, s.TokenLogProbs!.Count);
        Assert.Equal(s.Tokens, s.TokenLogProbs.Select(t => t.Token));
        Assert.Equal(s.LogProb, s.TokenLogProbs.Sum(t => t.LogProb), 4);

        // A deadline shorter than one step ends the search where it stands, with an output marked partial.
        var cut = (await OwnEngine.Run(shared.Model, _kernels, Prompt, options with { MaxTokens = 200, Deadline = TimeSpan.FromTicks(1) }, _reward)).Single();
        Assert.Equal(AlignFinish.Deadline, cut.Finish);
        Assert.True(cut.IsPartial);
    }

    [Fact]
    public async Task More_beams_than_blocks_is_refused_naming_both()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => OwnEngine.Run(_tabular, _kernels, "",
            new BeamOptions { Beams = 5, K = 4, BlockSize = 2, MaxTokens = 5 }, _reward));
        Assert.Contains("beams (5) must not exceed K (4)", e.Message);
    }
}
