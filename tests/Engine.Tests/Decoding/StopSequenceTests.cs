using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Decoding;

/// <summary>
/// Stop sequences end decoding in every strategy: a stopped output is the unstopped one cut at the first stop (same seed,
/// same tokens up to the token that completes it), it costs fewer tokens, and no streamed text ever lies past a stop.
/// stories260K runs with the F32 KV cache, so a request's tokens do not depend on how many rows share its batch.
/// </summary>
[Collection(SharedModelCollection.Name)]
public sealed class StopSequenceTests(SharedModel shared) : IDisposable
{
    private const string Prompt = "Once upon a time";
    private readonly IStepKernels _kernels = StepKernels.Create(KernelBackend.Cpu);
    private readonly IReward _reward = new LexiconReward(new Dictionary<string, double> { ["happy"] = 1, ["fun"] = 1, ["sad"] = -1 });

    public void Dispose() => _kernels.Dispose();

    private DecodingEngine Engine() => new(shared.Model, _kernels,
        new EngineOptions { MaxSequences = 16, MaxSequenceLength = 128, KvCacheType = KvCacheType.F32, PromptCacheEntries = 0 });

    private static StopSequences Stop(params string[] s) => StopSequences.FromStrings(s);

    /// <summary>The text up to the first occurrence of any stop (and whether there was one).</summary>
    private static (string Text, bool Stopped) Cut(string text, IReadOnlyList<string> stops, bool include = false)
    {
        int best = -1, length = 0;
        foreach (var s in stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (best < 0 || i < best)) (best, length) = (i, s.Length);
        }
        return best < 0 ? (text, false) : (text[..(include ? best + length : best)], true);
    }

    private static async Task<(IReadOnlyList<AlignedSample> Samples, Dictionary<int, string> Streamed)> Run(DecodingEngine engine, DecodingRequest request)
    {
        var samples = new List<AlignedSample>();
        var streamed = new Dictionary<int, string>();
        await foreach (var e in engine.StreamAsync(request))
        {
            if (e is TextAccepted t) streamed[t.Sample] = streamed.GetValueOrDefault(t.Sample, "") + t.TextDelta;
            else if (e is SampleCompleted c) samples.Add(c.Result);
        }
        return (samples.OrderBy(s => s.Index).ToList(), streamed);
    }

    /// <summary>A stopped output against the same request without stops: cut text, token prefix, finish Stop, fewer tokens.</summary>
    private void AssertCut(AlignedSample free, AlignedSample stopped, IReadOnlyList<string> stops, bool include = false)
    {
        var (text, hit) = Cut(free.Text, stops, include);
        Assert.Equal(text, stopped.Text);
        Assert.True(free.Tokens.Take(stopped.Tokens.Count).SequenceEqual(stopped.Tokens), "the stopped tokens are a prefix of the free run's");
        if (!hit)
        {
            Assert.Equal(free.Tokens.Count, stopped.Tokens.Count);
            return;
        }
        Assert.Equal(AlignFinish.Stop, stopped.Finish);
        // The last token completes the stop: without it, the text holds no stop yet.
        Assert.False(Cut(shared.Model.Detokenize(stopped.Tokens.Take(stopped.Tokens.Count - 1).ToArray()), stops).Stopped);
        Assert.True(Cut(shared.Model.Detokenize(stopped.Tokens.ToArray()), stops).Stopped);
    }

    [Fact]
    public async Task GenerationEndsEachSampleAtItsStopAndStreamsNothingPastIt()
    {
        using var engine = Engine();
        string[] stops = [".", " was"];
        var options = new GenerationOptions { Samples = 6, MaxTokens = 80, Seed = 11 };
        var free = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options });
        var (stopped, streamed) = await Run(engine, new DecodingRequest { Prompt = Prompt, Options = options with { Stop = Stop(stops) } });
        Assert.Equal(free.Count, stopped.Count);
        for (int i = 0; i < free.Count; i++)
        {
            AssertCut(free[i], stopped[i], stops);
            Assert.Equal(stopped[i].Text, streamed[i]);
            // log p covers the tokens through the stop token: the free run's per-token values summed over the prefix.
            Assert.True(stopped[i].LogProb >= free[i].LogProb - 1e-6);
        }
        Assert.Contains(stopped, s => s.Finish == AlignFinish.Stop);
        Assert.True(stopped.Sum(s => s.TokensEvaluated) < free.Sum(s => s.TokensEvaluated));
    }

    [Fact]
    public async Task IncludeStopKeepsTheStopTextAndStopTokenIdsEndLikeEos()
    {
        using var engine = Engine();
        var options = new GenerationOptions { Samples = 3, MaxTokens = 60, Seed = 5 };
        var free = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options });
        var (kept, streamed) = await Run(engine, new DecodingRequest { Prompt = Prompt, Options = options with { Stop = StopSequences.FromStrings(["."], includeStop: true) } });
        for (int i = 0; i < free.Count; i++)
        {
            AssertCut(free[i], kept[i], ["."], include: true);
            Assert.Equal(kept[i].Text, streamed[i]);
        }

        // A token id of the free run's first sample, at its 5th token: that sample ends there, the token's text dropped.
        int id = free[0].Tokens[4];
        int at = free[0].Tokens.ToList().IndexOf(id);
        var byToken = await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options with { Stop = new StopSequences { TokenIds = [id] } } });
        Assert.True(free[0].Tokens.Take(at + 1).SequenceEqual(byToken[0].Tokens));
        Assert.Equal(AlignFinish.Stop, byToken[0].Finish);
        Assert.Equal(shared.Model.Detokenize(free[0].Tokens.Take(at).ToArray()), byToken[0].Text);
    }

    [Fact]
    public async Task BestOfNCandidatesEndAtTheirOwnStopAndTheRewardScoresTheCutText()
    {
        using var engine = Engine();
        string[] stops = ["."];
        var options = new BestOfNOptions { N = 8, MaxTokens = 64, Seed = 3, ReturnCandidates = true };
        var free = (await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options, Reward = _reward }))[0];
        var stopped = (await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options with { Stop = Stop(stops) }, Reward = _reward }))[0];
        Assert.Equal(free.Candidates.Count, stopped.Candidates.Count);
        var scores = new double[1];
        for (int i = 0; i < free.Candidates.Count; i++)
        {
            var f = free.Candidates[i];
            var s = stopped.Candidates[i];
            Assert.Equal(Cut(f.Text, stops).Text, s.Text);
            Assert.True(f.Tokens.Take(s.Tokens.Count).SequenceEqual(s.Tokens));
            _reward.ScoreChecked([new RewardInput { Prompt = Prompt, Text = s.Text, Tokens = s.Tokens.ToArray(), IsFinished = s.Finished }], scores);
            Assert.Equal(scores[0], s.Reward, 12);
        }
        Assert.DoesNotContain(".", stopped.Text);
        Assert.True(stopped.TokensEvaluated < free.TokensEvaluated);
    }

    [Fact]
    public async Task TokenwiseCdEndsWhenTheAcceptedTextHitsAStop()
    {
        using var engine = Engine();
        string[] stops = [" the"];
        var options = new TokenwiseOptions { Candidates = 4, Beta = 1, MaxTokens = 48, Seed = 2 };
        var free = (await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options, Reward = _reward }))[0];
        var (stopped, streamed) = await Run(engine, new DecodingRequest { Prompt = Prompt, Options = options with { Stop = Stop(stops) }, Reward = _reward });
        AssertCut(free, stopped[0], stops);
        Assert.Equal(stopped[0].Text, streamed[0]);
    }

    [Fact]
    public async Task BlockwiseCdCutsABlockAtTheStopBeforeScoringIt()
    {
        using var engine = Engine();
        foreach (var stops in new[] { new[] { "." }, [" was", "!"] })
        {
            foreach (int block in new[] { 1, 4, 64 })
            {
                var options = new BlockwiseOptions { K = 4, BlockSize = block, MaxTokens = 64, Seed = 9, Samples = 2 };
                var (outputs, streamed) = await Run(engine, new DecodingRequest { Prompt = Prompt, Options = options with { Stop = Stop(stops) }, Reward = _reward });
                foreach (var o in outputs)
                {
                    Assert.False(Cut(o.Text, stops).Stopped, $"'{o.Text}' holds a stop");
                    Assert.Equal(o.Text, streamed[o.Index]);
                    if (o.Finish != AlignFinish.Stop) continue;
                    string full = shared.Model.Detokenize(o.Tokens.ToArray());
                    Assert.Equal(Cut(full, stops).Text, o.Text);
                    Assert.False(Cut(shared.Model.Detokenize(o.Tokens.Take(o.Tokens.Count - 1).ToArray()), stops).Stopped);
                }
                Assert.Contains(outputs, o => o.Finish == AlignFinish.Stop);
            }
        }
    }

    [Fact]
    public async Task RejectionCandidatesEndAtTheirStop()
    {
        using var engine = Engine();
        string[] stops = ["."];
        var options = new RejectionOptions { N = 8, Alpha = 0, Every = 4, MaxTokens = 64, Seed = 4, ReturnCandidates = true };
        var free = (await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options, Reward = _reward }))[0];
        var stopped = (await engine.RunAsync(new DecodingRequest { Prompt = Prompt, Options = options with { Stop = Stop(stops) }, Reward = _reward }))[0];
        for (int i = 0; i < free.Candidates.Count; i++)
            Assert.Equal(Cut(free.Candidates[i].Text, stops).Text, stopped.Candidates[i].Text);
        Assert.True(stopped.TokensEvaluated < free.TokensEvaluated);
    }

    [Fact]
    public void StopTextMatchesAcrossDeltasAndStreamsOnlyWhatCannotBeginAStop()
    {
        var random = new Random(7);
        string[] alphabet = ["a", "b", "ab", "ba", "\n", "x", "é"];
        foreach (bool include in new[] { false, true })
        {
            var stops = StopSequences.FromStrings(["aba", "b\nx", "éé"], include);
            var matcher = StopMatcher.For(stops)!;
            for (int trial = 0; trial < 2000; trial++)
            {
                var deltas = Enumerable.Range(0, random.Next(0, 12)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray();
                var text = new StopText(matcher);
                string streamed = "";
                foreach (var d in deltas)
                {
                    text.Append(d);
                    streamed += text.TakeStreamable();
                    if (text.Stopped) break;
                }
                streamed += text.TakeStreamable(final: true);
                var (expected, hit) = Cut(string.Concat(deltas), stops.Strings, include);
                Assert.Equal(expected, text.ToString());
                Assert.Equal(hit, text.Stopped);
                Assert.Equal(expected, streamed);
            }
        }
    }

    [Fact]
    public void StopSequencesAreBounded()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StopSequences { Strings = Enumerable.Repeat("x", 17).ToArray() });
        Assert.Throws<ArgumentOutOfRangeException>(() => new StopSequences { Strings = [new string('é', 129)] });
        Assert.Throws<ArgumentOutOfRangeException>(() => new StopSequences { Strings = [""] });
        Assert.Throws<ArgumentOutOfRangeException>(() => new StopSequences { TokenIds = [-1] });
        Assert.Null(StopMatcher.For(new StopSequences()));
    }
}
