using Tilt.Engine.Requests;


namespace Tilt.Interop.Tests;

public sealed class MappingTests
{
    /// <summary>tilt_request_default_options() as native/src/tilt_host.c fills it.</summary>
    internal static TiltRequestOptions HeaderDefaults() => new()
    {
        StructSize = (uint)System.Runtime.CompilerServices.Unsafe.SizeOf<TiltRequestOptions>(),
        Strategy = (int)Strategy.Blockwise,
        Samples = 1,
        MaxTokens = 128,
        N = 4,
        K = 8,
        BlockSize = 8,
        Selection = 0,
        TokenwiseTopK = 16,
        TopK = 0,
        Temperature = 1f,
        TopP = 1f,
        Beta = 1.0,
        Alpha = 0.5,
        Every = 8,
        Lambda = 1.0,
        Beams = 2,
    };

    [Fact]
    public void Header_defaults_are_the_engines_defaults()
    {
        var model = new TiltModelOptions { StructSize = 16 };
        Assert.Null(AbiCheck.CompareDefaults(model, HeaderDefaults()));
        var drifted = HeaderDefaults() with { K = 9, TopP = 0.9f };
        string? problems = AbiCheck.CompareDefaults(model, drifted);
        Assert.Contains("tilt_request_options.k is 9 in tilt.h and 8 in the engine", problems);
        Assert.Contains("tilt_request_options.top_p", problems);
    }

    [Fact]
    public void Defaults_map_to_the_engine_records()
    {
        var o = Assert.IsType<BlockwiseOptions>(RequestOptionsMapping.ToAligned(HeaderDefaults(), Strategy.Blockwise));
        Assert.Equal(new BlockwiseOptions(), o);
        var b = Assert.IsType<BestOfNOptions>(RequestOptionsMapping.ToAligned(HeaderDefaults() with { DeadlineMs = 250, Threads = 1 }, Strategy.BestOfN));
        Assert.Equal(TimeSpan.FromMilliseconds(250), b.Deadline);
        // Threads are the context's: the request's own value is read beside its options (a request asking for other
        // threads than its model's engine runs on an engine of its own), never stored in them.
        Assert.Equal(1, RequestOptionsMapping.ReadThreads(HeaderDefaults() with { Threads = 1 }));
        Assert.Null(RequestOptionsMapping.ReadThreads(HeaderDefaults()));
        Assert.Equal(new Tilt.Engine.Requests.GenerationOptions(), RequestOptionsMapping.ToGeneration(HeaderDefaults()));
    }

    [Theory]
    [InlineData("k", (int)Strategy.Blockwise)]
    [InlineData("block_size", (int)Strategy.Blockwise)]
    [InlineData("n", (int)Strategy.BestOfN)]
    [InlineData("tokenwise_top_k", (int)Strategy.Tokenwise)]
    [InlineData("beta", (int)Strategy.Tokenwise)]
    [InlineData("temperature", (int)Strategy.Blockwise)]
    [InlineData("top_k", (int)Strategy.BestOfN)]
    [InlineData("top_p", (int)Strategy.Sample)]
    [InlineData("max_tokens", (int)Strategy.Sample)]
    [InlineData("samples", (int)Strategy.Blockwise)]
    [InlineData("selection", (int)Strategy.Blockwise)]
    [InlineData("threads", (int)Strategy.Tokenwise)]
    [InlineData("deadline_ms", (int)Strategy.Blockwise)]
    [InlineData("alpha", (int)Strategy.Rejection)]
    [InlineData("every", (int)Strategy.Rejection)]
    [InlineData("lambda", (int)Strategy.SoftBestOfN)]
    [InlineData("beams", (int)Strategy.Beam)]
    [InlineData("k", (int)Strategy.Beam)]
    [InlineData("block_size", (int)Strategy.Beam)]
    public void A_bad_field_is_named_in_the_message(string field, int strategyValue)
    {
        var strategy = (Strategy)strategyValue;
        var o = HeaderDefaults();
        o = field switch
        {
            "k" => o with { K = 0 },
            "block_size" => o with { BlockSize = -1 },
            "n" => o with { N = 300 },
            "tokenwise_top_k" => o with { TokenwiseTopK = -1 },
            "beta" => o with { Beta = double.PositiveInfinity },
            "temperature" => o with { Temperature = float.NaN },
            "top_k" => o with { TopK = -3 },
            "top_p" => o with { TopP = 1.5f },
            "max_tokens" => o with { MaxTokens = 0 },
            "samples" => o with { Samples = 0 },
            "selection" => o with { Selection = 2 },
            "threads" => o with { Threads = -1 },
            "alpha" => o with { Alpha = 1 },
            "every" => o with { Every = o.MaxTokens },
            "lambda" => o with { Lambda = 0 },
            "beams" => o with { Beams = 0 },
            _ => o with { DeadlineMs = -1 },
        };
        var e = Assert.Throws<StatusException>(() => strategy == Strategy.Sample
            ? RequestOptionsMapping.ToGeneration(o)
            : (object)RequestOptionsMapping.ToAligned(o, strategy));
        Assert.Equal(TiltStatus.InvalidArgument, e.Status);
        Assert.StartsWith($"tilt_request_options.{field}", e.Message);
        Assert.DoesNotContain("(Parameter", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Fields_a_strategy_does_not_read_are_not_checked()
    {
        // The struct carries every member; best-of-n reads n alone, so a zero k or block size is no error.
        var o = HeaderDefaults() with { K = 0, BlockSize = 0, Selection = 7, Every = 0, Alpha = 2, Lambda = 0, Beams = 0 };
        Assert.Equal(new BestOfNOptions(), RequestOptionsMapping.ToAligned(o, Strategy.BestOfN));
        var e = Assert.Throws<StatusException>(() => RequestOptionsMapping.ToAligned(o with { N = 0 }, Strategy.BestOfN));
        Assert.Equal("tilt_request_options.n must be between 1 and 256, got 0", e.Message);
    }

    [Fact]
    public void Sampling_refuses_a_deadline_and_strategies_are_checked()
    {
        var e = Assert.Throws<StatusException>(() => RequestOptionsMapping.ToGeneration(HeaderDefaults() with { DeadlineMs = 5 }));
        Assert.Contains("deadline_ms must be 0 for TILT_STRATEGY_SAMPLE", e.Message);
        e = Assert.Throws<StatusException>(() => RequestOptionsMapping.ReadStrategy(HeaderDefaults() with { Strategy = 8 }));
        Assert.Contains("strategy must be a tilt_strategy (0..7), got 8", e.Message);
        Assert.Equal(Strategy.SoftBestOfN, RequestOptionsMapping.ReadStrategy(HeaderDefaults() with { Strategy = 5 }));
        Assert.Equal(Strategy.Beam, RequestOptionsMapping.ReadStrategy(HeaderDefaults() with { Strategy = 7 }));
        e = Assert.Throws<StatusException>(() => RequestOptionsMapping.ReadStrategy(HeaderDefaults() with { Reserved3 = 1 }));
        Assert.Equal("tilt_request_options.reserved3 must be 0, got 1", e.Message);
    }

    [Fact]
    public void Beam_search_maps_through_the_catalogue_and_beams_must_not_exceed_k()
    {
        var o = Assert.IsType<BeamOptions>(RequestOptionsMapping.ToAligned(HeaderDefaults(), Strategy.Beam));
        Assert.Equal(new BeamOptions(), o);
        var b = Assert.IsType<BeamOptions>(RequestOptionsMapping.ToAligned(HeaderDefaults() with { Beams = 3, K = 6, BlockSize = 4 }, Strategy.Beam));
        Assert.Equal((3, 6, 4), (b.Beams, b.K, b.BlockSize));
        var e = Assert.Throws<StatusException>(() => RequestOptionsMapping.ToAligned(HeaderDefaults() with { Beams = 9 }, Strategy.Beam));
        Assert.Equal(TiltStatus.InvalidArgument, e.Status);
        Assert.StartsWith("tilt_request_options.beams", e.Message);
        Assert.Contains("must not exceed k (8)", e.Message);
        // The other strategies do not read beams.
        Assert.IsType<BlockwiseOptions>(RequestOptionsMapping.ToAligned(HeaderDefaults() with { Beams = 9 }, Strategy.Blockwise));
    }
}

public sealed class HandleTableTests
{
    [Fact]
    public void Freed_forged_and_wrong_kind_handles_are_refused()
    {
        var reward = new RewardHandle(new Tilt.Engine.Rewards.LengthReward(10), null);
        nint id = HandleTable.Add(reward);
        Assert.NotEqual(0, id);
        Assert.Equal(0x7117L, (long)id >> 48); // a non-canonical address: dereferencing it faults at once
        Assert.Same(reward, HandleTable.Get<RewardHandle>(id, "reward"));

        var wrongKind = Assert.Throws<StatusException>(() => HandleTable.Get<ModelHandle>(id, "model"));
        Assert.Equal(TiltStatus.InvalidHandle, wrongKind.Status);
        Assert.Equal("model is a tilt_reward handle, not a tilt_model", wrongKind.Message);

        Assert.Same(reward, HandleTable.Remove<RewardHandle>(id, "reward"));
        var freed = Assert.Throws<StatusException>(() => HandleTable.Remove<RewardHandle>(id, "reward"));
        Assert.Contains("not a live handle", freed.Message);
        Assert.Equal(TiltStatus.InvalidHandle, Assert.Throws<StatusException>(() => HandleTable.Get<RewardHandle>(0, "reward")).Status);
        Assert.Equal(TiltStatus.InvalidHandle, Assert.Throws<StatusException>(() => HandleTable.Get<RewardHandle>(0x1234, "reward")).Status);
    }

    [Fact]
    public void Ids_are_never_reused()
    {
        var ids = Enumerable.Range(0, 100).Select(_ =>
        {
            nint id = HandleTable.Add(new RewardHandle(new Tilt.Engine.Rewards.LengthReward(1), null));
            HandleTable.Remove<RewardHandle>(id, "reward");
            return id;
        }).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }
}

public sealed class CallerThreadContextTests
{
    [Fact]
    public void Continuations_run_on_the_calling_thread()
    {
        int caller = Environment.CurrentManagedThreadId;
        var seen = new List<int>();
        CallerThreadContext.Run(async () =>
        {
            for (int i = 0; i < 5; i++)
            {
                await Task.Yield();
                seen.Add(Environment.CurrentManagedThreadId);
            }
        });
        Assert.Equal(5, seen.Count);
        Assert.All(seen, id => Assert.Equal(caller, id));
    }

    [Fact]
    public void An_exception_of_the_body_reaches_the_caller()
    {
        var before = SynchronizationContext.Current;
        var e = Assert.Throws<InvalidOperationException>(() => CallerThreadContext.Run(async () =>
        {
            await Task.Yield();
            throw new InvalidOperationException("boom");
        }));
        Assert.Equal("boom", e.Message);
        Assert.Same(before, SynchronizationContext.Current);
    }
}
