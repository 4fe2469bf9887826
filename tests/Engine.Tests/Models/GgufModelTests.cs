using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;

namespace Tilt.Engine.Tests.Models;

[Collection(SharedModelCollection.Name)]
public sealed class GgufModelTests(SharedModel shared)
{
    private readonly GgufModel _model = shared.Model;

    [Fact]
    public void FingerprintIsTheSha256FromTheModelsReadme()
    {
        Assert.Equal("sha256:" + DefaultModel.Stories260KSha256, _model.Info.Fingerprint);
    }

    [Fact]
    public void InfoMatchesTheStories260KShape()
    {
        var info = _model.Info;
        Assert.Equal(ModelKind.Gguf, info.Kind);
        Assert.Equal(512, info.VocabularySize);
        Assert.Equal(64, info.HiddenSize);
        Assert.Equal(1, info.BosToken);
        Assert.Equal(2, info.EosToken);
        Assert.Equal([2, 1], info.StopTokens); // stories end with BOS (llama2.c convention)
        Assert.True(info.TrainedContextSize >= 512);
    }

    [Theory]
    [InlineData(1, 300_000L, 2, 1)]          // stories260K, one row: 0.23 ms on one thread against 0.65 on two
    [InlineData(4, 300_000L, 2, 1)]          // best-of-4 on it: 0.82 against 0.94
    [InlineData(16, 300_000L, 2, 2)]         // 16 rows: two threads win (2.9 against 3.6 ms)
    [InlineData(1, 24_000_000L, 2, 2)]       // the 15M model's single row: 1.9x faster on two
    [InlineData(1, 24_000_000L, 1, 1)]
    public void A_tiny_decode_runs_on_one_thread(int rows, long parameters, int threads, int expected)
    {
        Assert.Equal(expected, GgufDecodingSession.ThreadsFor(rows, parameters, threads));
    }

    [Fact]
    public void The_context_switches_threads_between_tiny_and_larger_steps()
    {
        int threads = Math.Min(2, Environment.ProcessorCount);
        using var session = (GgufDecodingSession)_model.CreateSession(new SessionOptions { MaxSequences = 16, MaxSequenceLength = 32, Threads = threads });
        session.Prefill(0, [1, 20]);
        for (int s = 1; s < 16; s++) session.CopySequence(0, s);
        int[] all = Enumerable.Range(0, 16).ToArray();
        // 16 rows of stories260K (~0.3M parameters each) are above the single-thread work, 2 rows below it.
        session.Step(all, all.Select(s => 30 + s).ToArray());
        Assert.Equal(threads, session.LlamaThreads);
        session.Step([0, 1], [40, 41]);
        Assert.Equal(1, session.LlamaThreads);
        var tiny = session.Logits.ToArray();
        session.Step(all, all.Select(s => 50 + s).ToArray());
        Assert.Equal(threads, session.LlamaThreads);
        Assert.All(tiny, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void TokenizeAddsBosAndDetokenizeRoundTrips()
    {
        int[] tokens = _model.Tokenize("Once upon a time");
        Assert.Equal(1, tokens[0]);
        Assert.Equal(" Once upon a time", _model.Detokenize(tokens.AsSpan(1)));
        Assert.NotEqual(1, _model.Tokenize("Once", addBos: false)[0]);
    }

    [Fact]
    public void ForkedBatchMatchesEachSequenceDecodedAlone()
    {
        const int k = 8, steps = 6;
        int[] prompt = _model.Tokenize("Once upon a time there was");
        int vocab = _model.Info.VocabularySize, d = _model.Info.HiddenSize;
        var tokens = new int[k, steps];
        var batchedLogits = new float[k, steps, vocab];
        var batchedHidden = new float[k, steps, d];

        // F32 KV cache: with F16, rounding of cached keys turns the batch's different summation order
        // into logit differences up to ~1e-3 (measured), which says nothing about the batching itself.
        using (var session = _model.CreateSession(new SessionOptions { MaxSequences = k, MaxSequenceLength = 64, KvCacheType = KvCacheType.F32 }))
        {
            session.Prefill(0, prompt);
            float[] first = session.Logits.ToArray();
            for (int s = 1; s < k; s++) session.CopySequence(0, s);
            var seqs = Enumerable.Range(0, k).ToArray();
            var next = new int[k];
            // Different tokens per sequence: the top-(s+1) token of the shared first logits, then each
            // sequence's own argmax, so the rows diverge.
            var order = Enumerable.Range(0, vocab).OrderByDescending(t => first[t]).ToArray();
            for (int s = 0; s < k; s++) next[s] = order[s];
            for (int t = 0; t < steps; t++)
            {
                for (int s = 0; s < k; s++) tokens[s, t] = next[s];
                session.Step(seqs, next);
                Assert.Equal(k, session.OutputRows);
                for (int s = 0; s < k; s++)
                {
                    var row = session.Logits.Slice(s * vocab, vocab);
                    for (int v = 0; v < vocab; v++) batchedLogits[s, t, v] = row[v];
                    var h = session.Hidden.Slice(s * d, d);
                    for (int j = 0; j < d; j++) batchedHidden[s, t, j] = h[j];
                    next[s] = ArgMax(row);
                }
            }
        }

        double maxLogit = 0, maxHidden = 0;
        using (var alone = _model.CreateSession(new SessionOptions { MaxSequences = 1, MaxSequenceLength = 64, KvCacheType = KvCacheType.F32 }))
        {
            for (int s = 0; s < k; s++)
            {
                alone.RemoveSequence(0);
                alone.Prefill(0, prompt);
                for (int t = 0; t < steps; t++)
                {
                    alone.Step([0], [tokens[s, t]]);
                    var row = alone.Logits;
                    for (int v = 0; v < vocab; v++) maxLogit = Math.Max(maxLogit, Math.Abs(row[v] - batchedLogits[s, t, v]));
                    var h = alone.Hidden;
                    for (int j = 0; j < d; j++) maxHidden = Math.Max(maxHidden, Math.Abs(h[j] - batchedHidden[s, t, j]));
                }
            }
        }
        Assert.True(maxLogit < 1e-4, $"max |logit difference| = {maxLogit}");
        Assert.True(maxHidden < 1e-4, $"max |hidden difference| = {maxHidden}");
    }

    [Fact]
    public void PrefillOutputsTheLastPromptTokensLogitsAndHiddenState()
    {
        int[] prompt = _model.Tokenize("Once upon a time there was a girl");
        using var whole = _model.CreateSession(new SessionOptions { MaxSequences = 1, MaxSequenceLength = 32, KvCacheType = KvCacheType.F32 });
        whole.Prefill(0, prompt);
        Assert.Equal(1, whole.OutputRows);
        using var stepped = _model.CreateSession(new SessionOptions { MaxSequences = 1, MaxSequenceLength = 32, KvCacheType = KvCacheType.F32 });
        stepped.Prefill(0, prompt[..^1]);
        stepped.Step([0], [prompt[^1]]);
        Assert.True(MaxAbs(whole.Logits, stepped.Logits) < 1e-4, $"logits differ by {MaxAbs(whole.Logits, stepped.Logits)}");
        Assert.True(MaxAbs(whole.Hidden, stepped.Hidden) < 1e-4, $"hidden differs by {MaxAbs(whole.Hidden, stepped.Hidden)}");
        Assert.Equal(prompt.Length, whole.Length(0));
    }

    [Fact]
    public void LogitsAndHiddenStatesDifferAcrossDivergedSequences()
    {
        using var session = _model.CreateSession(new SessionOptions { MaxSequences = 2, MaxSequenceLength = 32 });
        session.Prefill(0, _model.Tokenize("Once upon a time"));
        session.CopySequence(0, 1);
        session.Step([0, 1], [100, 200]);
        Assert.False(session.Logits[..512].SequenceEqual(session.Logits[512..]));
        Assert.False(session.Hidden[..64].SequenceEqual(session.Hidden[64..]));
    }

    [Fact]
    public void CopySequenceMovesAWinnerOverAnotherSequence()
    {
        using var session = _model.CreateSession(new SessionOptions { MaxSequences = 3, MaxSequenceLength = 32 });
        session.Prefill(0, _model.Tokenize("Once upon a time"));
        session.CopySequence(0, 1);
        session.CopySequence(0, 2);
        session.Step([0, 1, 2], [100, 200, 300]);
        int before = session.Length(1);
        session.Step([1], [7]);
        Assert.Equal(before + 1, session.Length(1));
        session.CopySequence(1, 2);
        Assert.Equal(session.Length(1), session.Length(2));
        session.Step([1, 2], [42, 42]);
        Assert.True(session.Logits[..512].SequenceEqual(session.Logits[512..]) ||
                    MaxAbs(session.Logits[..512], session.Logits[512..]) < 1e-4);
    }

    [Fact]
    public void APromptLongerThanTheSequenceLimitIsARequestError()
    {
        using var session = _model.CreateSession(new SessionOptions { MaxSequences = 1, MaxSequenceLength = 16 });
        var longPrompt = _model.Tokenize(string.Join(' ', Enumerable.Repeat("the dog ran", 40)));
        var e = Assert.Throws<RequestException>(() => session.Prefill(0, longPrompt));
        Assert.Contains("prompt has", e.Message);
    }

    [Fact]
    public void MoreThan256SequencesIsRejectedWithAClearMessage()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new SessionOptions { MaxSequences = 257 });
        Assert.Contains("256", e.Message);
    }

    [Fact]
    public void StepRejectsRepeatedAndUnknownSequencesAndTokens()
    {
        using var session = _model.CreateSession(new SessionOptions { MaxSequences = 2, MaxSequenceLength = 16 });
        session.Prefill(0, _model.Tokenize("Once"));
        session.CopySequence(0, 1);
        Assert.Throws<ArgumentException>(() => session.Step([0, 0], [5, 5]));
        Assert.Throws<ArgumentOutOfRangeException>(() => session.Step([2], [5]));
        Assert.Throws<ArgumentOutOfRangeException>(() => session.Step([0], [512]));
    }

    internal static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    private static double MaxAbs(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i]));
        return m;
    }
}
