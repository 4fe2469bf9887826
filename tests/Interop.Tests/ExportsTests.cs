using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Tilt.Tests;
using Tilt.Engine.Requests;

namespace Tilt.Interop.Tests;

/// <summary>
/// The exports called in-process through unmanaged function pointers, as the shim calls them, on the tabular example
/// model (no llama.cpp): statuses, messages, buffers and a best-of-n run steered by an unmanaged reward callback.
/// The same paths through the real shim and stories260K are covered by native/tests and native/python.
/// </summary>
[Collection(nameof(ExportsTests))] // the error sink and the handle count are process-wide
public sealed unsafe class ExportsTests
{
    [ThreadStatic] private static string? _lastError;
    [ThreadStatic] private static List<(string Text, double Reward)>? _rewardCalls;

    public ExportsTests() => ErrorSink.Attach(&CaptureError);

    [Fact]
    public void Initialize_checks_version_layout_and_defaults()
    {
        uint[] layout = AbiCheck.ManagedLayout();
        var model = new TiltModelOptions { StructSize = 16 };
        var request = MappingTests.HeaderDefaults();
        fixed (uint* l = layout)
        {
            var abi = new TiltHostAbi
            {
                StructSize = (uint)sizeof(TiltHostAbi),
                ApiVersion = Exports.ApiVersion,
                SetError = &CaptureError,
                Layout = l,
                LayoutLength = (uint)layout.Length,
                ModelDefaults = &model,
                RequestDefaults = &request,
            };
            var initialize = (delegate* unmanaged[Cdecl]<TiltHostAbi*, int>)&Exports.Initialize;
            Assert.Equal(TiltStatus.Ok, initialize(&abi));

            abi.ApiVersion = 2u << 16;
            Assert.Equal(TiltStatus.Runtime, initialize(&abi));
            Assert.Contains("API 2.0", _lastError);
            abi.ApiVersion = Exports.ApiVersion;

            l[0] += 8;
            Assert.Equal(TiltStatus.Runtime, initialize(&abi));
            Assert.Contains("sizeof(tilt_model_options)", _lastError);
            l[0] -= 8;

            request.N = 5;
            Assert.Equal(TiltStatus.Runtime, initialize(&abi));
            Assert.Contains("tilt_request_options.n", _lastError);
        }
    }

    [Fact]
    public void Best_of_n_on_the_tabular_model_returns_the_callbacks_best_candidate()
    {
        nint model = LoadTabular();
        var ping = (delegate* unmanaged[Cdecl]<int>)&Exports.Ping;
        Assert.Equal(TiltStatus.Ok, ping());

        nint reward;
        var createReward = (delegate* unmanaged[Cdecl]<delegate* unmanaged[Cdecl]<void*, byte*, byte*, int, double*, int>, void*, byte*, nint*, int>)
            &Exports.RewardCreateCallback;
        fixed (byte* name = "length"u8)
            Assert.Equal(TiltStatus.Ok, createReward(&TextLength, null, name, &reward));

        var options = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.BestOfN, N = 16, MaxTokens = 12, Seed = 3 };
        nint request = Create(model, "", options, reward);
        _rewardCalls = [];
        var run = (delegate* unmanaged[Cdecl]<nint, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>, void*, int>)&Exports.RequestRun;
        Assert.Equal(TiltStatus.Ok, run(request, null, null));

        var info = new TiltOutputInfo { StructSize = (uint)sizeof(TiltOutputInfo) };
        var outputInfo = (delegate* unmanaged[Cdecl]<nint, int, TiltOutputInfo*, int>)&Exports.RequestOutputInfo;
        Assert.Equal(TiltStatus.Ok, outputInfo(request, 0, &info));
        Assert.Equal(16, _rewardCalls.Count);
        Assert.Equal(_rewardCalls.Max(c => c.Reward), info.Reward);
        Assert.Equal(Text(request).Length, info.Reward);
        Assert.Equal((int)NativeKlMethod.BonEstimate, info.KlMethod);

        Assert.Equal(TiltStatus.BadState, run(request, null, null));
        Assert.Contains("ran already", _lastError);
        Free(&Exports.RequestFree, request);
        Free(&Exports.RewardFree, reward);
        Free(&Exports.ModelFree, model);
        Assert.Equal(TiltStatus.InvalidHandle, ((delegate* unmanaged[Cdecl]<nint, int>)&Exports.ModelFree)(model));
    }

    [Fact]
    public void A_similarity_spec_is_a_reward_at_the_c_api()
    {
        string miniLm = Path.GetFullPath(Path.Combine(TestPaths.RepositoryRoot, "..", "shared", "models", "all-MiniLM-L6-v2", "model.onnx"));
        var spec = (delegate* unmanaged[Cdecl]<nint, byte*, nint*, int>)&Exports.RewardCreateSpec;
        nint reward;
        fixed (byte* s = Encoding.UTF8.GetBytes($"similarity:{miniLm}|a happy story about friends\0"))
            Assert.True(spec(0, s, &reward) == TiltStatus.Ok, _lastError);

        nint model = LoadTabular();
        nint request = Create(model, "", MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.BestOfN, N = 8, MaxTokens = 12, Seed = 3 }, reward);
        var run = (delegate* unmanaged[Cdecl]<nint, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>, void*, int>)&Exports.RequestRun;
        Assert.True(run(request, null, null) == TiltStatus.Ok, _lastError);
        var info = new TiltOutputInfo { StructSize = (uint)sizeof(TiltOutputInfo) };
        var outputInfo = (delegate* unmanaged[Cdecl]<nint, int, TiltOutputInfo*, int>)&Exports.RequestOutputInfo;
        Assert.Equal(TiltStatus.Ok, outputInfo(request, 0, &info));
        Assert.InRange(info.Reward, -1.0, 1.0);

        string missing = Path.Combine(Path.GetTempPath(), "tilt-no-such-model.onnx");
        nint failed;
        fixed (byte* s = Encoding.UTF8.GetBytes($"similarity:{missing}|friends\0"))
            Assert.Equal(TiltStatus.Engine, spec(0, s, &failed));
        Assert.Contains(missing, _lastError);
        Assert.Contains("ONNX model file not found", _lastError);
        Free(&Exports.RequestFree, request);
        Free(&Exports.RewardFree, reward);
        Free(&Exports.ModelFree, model);
    }

    [Fact]
    public void An_rm_spec_is_a_reward_at_the_c_api()
    {
        // A small random llama backbone and a score head written as Hugging Face safetensors, as a user brings them.
        string folder = Directory.CreateTempSubdirectory("tilt-rm-c-").FullName;
        try
        {
            string backbone = Path.Combine(folder, "rm.gguf");
            Engine.Models.Gguf.SyntheticModel.Write(backbone, new Engine.Models.Gguf.ModelShape("rm", 64, 2, 2, 2, 128, 512),
                Engine.Models.Gguf.SentencePieceVocabulary.CopyFrom(TestPaths.DefaultModel), Engine.Models.Gguf.GgufTensorType.F32, 7);
            string head = Path.Combine(folder, "score.safetensors");
            SafetensorsWriter.Write(head, new SafetensorsWriter.Tensor("score.weight", "F32", [1, 64], [.. Enumerable.Range(0, 64).Select(i => (float)Math.Sin(i + 1))]));
            string text = $"rm:{backbone},{head}";

            var spec = (delegate* unmanaged[Cdecl]<nint, byte*, nint*, int>)&Exports.RewardCreateSpec;
            nint reward;
            fixed (byte* s = Encoding.UTF8.GetBytes(text + "\0"))
                Assert.True(spec(0, s, &reward) == TiltStatus.Ok, _lastError);
            nint model = LoadTabular();
            nint request = Create(model, "", MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.BestOfN, N = 4, MaxTokens = 8, Seed = 5 }, reward);
            var run = (delegate* unmanaged[Cdecl]<nint, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>, void*, int>)&Exports.RequestRun;
            Assert.True(run(request, null, null) == TiltStatus.Ok, _lastError);
            var info = new TiltOutputInfo { StructSize = (uint)sizeof(TiltOutputInfo) };
            var outputInfo = (delegate* unmanaged[Cdecl]<nint, int, TiltOutputInfo*, int>)&Exports.RequestOutputInfo;
            Assert.Equal(TiltStatus.Ok, outputInfo(request, 0, &info));

            // The winner's reward is what the same reward model gives its text, scored on its own.
            var direct = Engine.Rewards.Specs.RewardSpec.Parse(text);
            double expected = Engine.Rewards.RewardExtensions.Score(direct,
                new Engine.Rewards.RewardInput { Prompt = "", Text = Text(request), Tokens = [], IsFinished = true });
            Assert.Equal(expected, info.Reward, 6);

            nint failed;
            string missing = Path.Combine(folder, "no-such.safetensors");
            fixed (byte* s = Encoding.UTF8.GetBytes($"rm:{backbone},{missing}\0"))
                Assert.Equal(TiltStatus.Engine, spec(0, s, &failed));
            Assert.Contains("no-such.safetensors", _lastError);
            Free(&Exports.RequestFree, request);
            Free(&Exports.RewardFree, reward);
            Free(&Exports.ModelFree, model);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Buffers_report_the_size_they_need()
    {
        nint model = LoadTabular();
        nint request = Create(model, "", MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.Sample, MaxTokens = 6 }, 0);
        var run = (delegate* unmanaged[Cdecl]<nint, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>, void*, int>)&Exports.RequestRun;
        Assert.Equal(TiltStatus.Ok, run(request, null, null));
        var text = (delegate* unmanaged[Cdecl]<nint, int, byte*, nuint, nuint*, int>)&Exports.RequestOutputText;
        nuint need;
        Assert.Equal(TiltStatus.BufferTooSmall, text(request, 0, null, 0, &need));
        Assert.Contains("needed", _lastError);
        byte* small = stackalloc byte[1];
        small[0] = 42;
        nuint again;
        Assert.Equal(TiltStatus.BufferTooSmall, text(request, 0, small, need - 1, &again));
        Assert.Equal(need, again);
        Assert.Equal(42, small[0]);
        Assert.Equal(TiltStatus.InvalidArgument, text(request, 0, null, 5, &again));
        Assert.Equal(TiltStatus.InvalidArgument, text(request, 3, null, 0, &again));
        Assert.Contains("out of range", _lastError);
        Free(&Exports.RequestFree, request);
        Free(&Exports.ModelFree, model);
    }

    [Fact]
    public void Invalid_utf8_and_bad_struct_sizes_are_invalid_arguments()
    {
        nint model = LoadTabular();
        nint reward;
        var spec = (delegate* unmanaged[Cdecl]<nint, byte*, nint*, int>)&Exports.RewardCreateSpec;
        fixed (byte* s = "length:3\0"u8)
            Assert.Equal(TiltStatus.Ok, spec(0, s, &reward));
        fixed (byte* s = "bogus:1\0"u8)
            Assert.Equal(TiltStatus.Engine, spec(0, s, &reward));
        var create = (delegate* unmanaged[Cdecl]<nint, byte*, TiltRequestOptions*, nint, nint, nint*, int>)&Exports.RequestCreate;
        var options = MappingTests.HeaderDefaults();
        nint request;
        fixed (byte* bad = new byte[] { (byte)'t', (byte)'h', (byte)'e', (byte)' ', 0xC3, 0x28, 0 })
            Assert.Equal(TiltStatus.InvalidArgument, create(model, bad, &options, reward, 0, &request));
        Assert.Contains("prompt is not valid UTF-8", _lastError);
        options.StructSize = 72;
        fixed (byte* p = "the\0"u8)
            Assert.Equal(TiltStatus.InvalidArgument, create(model, p, &options, reward, 0, &request));
        Assert.Contains("struct_size is 72", _lastError);
        Free(&Exports.RewardFree, reward);
        Free(&Exports.ModelFree, model);
    }

    [Fact]
    public void Stop_strings_end_each_output_with_finish_stop_and_api_1_1_structs_still_work()
    {
        nint model = LoadTabular();
        var run = (delegate* unmanaged[Cdecl]<nint, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>, void*, int>)&Exports.RequestRun;
        var outputInfo = (delegate* unmanaged[Cdecl]<nint, int, TiltOutputInfo*, int>)&Exports.RequestOutputInfo;
        var options = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.Sample, MaxTokens = 12, Seed = 5 };

        // A caller compiled against API 1.1 passes the smaller struct: no stop fields, the same output as without stops.
        var old = options with { StructSize = (uint)Marshal.OffsetOf<TiltRequestOptions>(nameof(TiltRequestOptions.Stop)) };
        nint free = Create(model, "", old, 0);
        Assert.Equal(TiltStatus.Ok, run(free, null, null));
        string full = Text(free);
        Free(&Exports.RequestFree, free);
        int space = full.IndexOf(' ', 1);
        Assert.True(space > 0, full);
        string stop = full.Substring(space, 2);

        fixed (byte* s = Encoding.UTF8.GetBytes(stop + "\0"))
        {
            byte** strings = stackalloc byte*[1];
            strings[0] = s;
            nint request = Create(model, "", options with { Stop = strings, NStop = 1 }, 0);
            Assert.Equal(TiltStatus.Ok, run(request, null, null));
            Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], Text(request));
            var info = new TiltOutputInfo { StructSize = (uint)sizeof(TiltOutputInfo) };
            Assert.Equal(TiltStatus.Ok, outputInfo(request, 0, &info));
            Assert.Equal(3, info.Finish); // TILT_FINISH_STOP
            Free(&Exports.RequestFree, request);

            var create = (delegate* unmanaged[Cdecl]<nint, byte*, TiltRequestOptions*, nint, nint, nint*, int>)&Exports.RequestCreate;
            var bad = options with { Stop = null, NStop = 1 };
            nint refused;
            fixed (byte* p = "\0"u8)
            {
                Assert.Equal(TiltStatus.InvalidArgument, create(model, p, &bad, 0, 0, &refused));
                Assert.Contains("tilt_request_options.stop is NULL", _lastError);
                bad = options with { Stop = strings, NStop = 17 };
                Assert.Equal(TiltStatus.InvalidArgument, create(model, p, &bad, 0, 0, &refused));
                Assert.Contains("n_stop must be 0..16", _lastError);
            }
        }
        Free(&Exports.ModelFree, model);
    }

    [Fact]
    public void Soft_best_of_n_runs_and_api_1_2_structs_take_the_default_lambda()
    {
        nint model = LoadTabular();
        nint reward;
        var spec = (delegate* unmanaged[Cdecl]<nint, byte*, nint*, int>)&Exports.RewardCreateSpec;
        fixed (byte* s = "length:3\0"u8)
            Assert.Equal(TiltStatus.Ok, spec(0, s, &reward));
        var run = (delegate* unmanaged[Cdecl]<nint, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>, void*, int>)&Exports.RequestRun;
        var options = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.SoftBestOfN, N = 4, MaxTokens = 6, Seed = 5 };
        Assert.Equal(1.0, options.Lambda);

        // A caller compiled against API 1.2 passes the struct without lambda: the default (1.0) gives the same draw.
        var old = options with { StructSize = (uint)Marshal.OffsetOf<TiltRequestOptions>(nameof(TiltRequestOptions.Lambda)) };
        nint current = Create(model, "", options, reward), previous = Create(model, "", old, reward);
        Assert.Equal(TiltStatus.Ok, run(current, null, null));
        Assert.Equal(TiltStatus.Ok, run(previous, null, null));
        Assert.Equal(Text(current), Text(previous));
        Free(&Exports.RequestFree, current);
        Free(&Exports.RequestFree, previous);

        var create = (delegate* unmanaged[Cdecl]<nint, byte*, TiltRequestOptions*, nint, nint, nint*, int>)&Exports.RequestCreate;
        var bad = options with { Lambda = 0 };
        nint refused;
        fixed (byte* p = "\0"u8)
            Assert.Equal(TiltStatus.InvalidArgument, create(model, p, &bad, reward, 0, &refused));
        Assert.Contains("lambda", _lastError);
        Free(&Exports.RewardFree, reward);
        Free(&Exports.ModelFree, model);
    }

    [Fact]
    public void Beam_search_runs_and_api_1_3_structs_take_the_default_beams()
    {
        nint model = LoadTabular();
        nint reward;
        var spec = (delegate* unmanaged[Cdecl]<nint, byte*, nint*, int>)&Exports.RewardCreateSpec;
        fixed (byte* s = "length:3\0"u8)
            Assert.Equal(TiltStatus.Ok, spec(0, s, &reward));
        var run = (delegate* unmanaged[Cdecl]<nint, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>, void*, int>)&Exports.RequestRun;
        var outputInfo = (delegate* unmanaged[Cdecl]<nint, int, TiltOutputInfo*, int>)&Exports.RequestOutputInfo;
        var options = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.Beam, K = 4, BlockSize = 2, MaxTokens = 8, Seed = 5 };
        Assert.Equal(2, options.Beams);

        // A caller compiled against API 1.3 passes the struct without beams: whatever lies beyond it is not read, and
        // the default (2) gives the same search as beams = 2.
        var old = options with
        {
            StructSize = (uint)Marshal.OffsetOf<TiltRequestOptions>(nameof(TiltRequestOptions.Beams)),
            Beams = 4,
            Reserved3 = 7,
        };
        nint current = Create(model, "", options, reward), previous = Create(model, "", old, reward);
        Assert.Equal(TiltStatus.Ok, run(current, null, null));
        Assert.Equal(TiltStatus.Ok, run(previous, null, null));
        Assert.Equal(Text(current), Text(previous));
        var info = new TiltOutputInfo { StructSize = (uint)sizeof(TiltOutputInfo) };
        Assert.Equal(TiltStatus.Ok, outputInfo(current, 0, &info));
        Assert.Equal((int)NativeKlMethod.BlockEstimate, info.KlMethod);
        Assert.Equal((int)NativeKlMethod.BlockBound, info.KlBoundMethod);
        Assert.InRange(info.NTokens, 1, 8);
        Free(&Exports.RequestFree, current);
        Free(&Exports.RequestFree, previous);

        var create = (delegate* unmanaged[Cdecl]<nint, byte*, TiltRequestOptions*, nint, nint, nint*, int>)&Exports.RequestCreate;
        var bad = options with { Beams = 5 };
        nint refused = 0;
        fixed (byte* p = "\0"u8)
            Assert.Equal(TiltStatus.InvalidArgument, create(model, p, &bad, reward, 0, &refused));
        Assert.Contains("tilt_request_options.beams", _lastError);
        Assert.Contains("must not exceed k (4)", _lastError);
        Assert.Equal(0, refused);
        Free(&Exports.RewardFree, reward);
        Free(&Exports.ModelFree, model);
    }

    [Fact]
    public void Scoring_a_given_text_returns_its_exact_per_token_log_probabilities_and_alternatives()
    {
        nint model = LoadTabular();
        var run = (delegate* unmanaged[Cdecl]<nint, delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>, void*, int>)&Exports.RequestRun;
        var info = (delegate* unmanaged[Cdecl]<nint, int, TiltOutputInfo*, int>)&Exports.RequestOutputInfo;
        var logprobs = (delegate* unmanaged[Cdecl]<nint, int, double*, nuint, nuint*, int>)&Exports.RequestOutputLogprobs;
        var top = (delegate* unmanaged[Cdecl]<nint, int, int*, double*, nuint, nuint*, int>)&Exports.RequestOutputTopLogprobs;
        using var tabular = Tilt.Engine.Models.Tabular.TabularModel.Load(TestPaths.TabularExample);
        fixed (byte* text = "the cat was happy\0"u8)
        {
            var options = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.Score, Continuation = text, TopLogprobs = 2 };
            nint request = Create(model, "", options, 0);
            Assert.Equal(TiltStatus.Ok, run(request, null, null));
            var o = new TiltOutputInfo { StructSize = (uint)sizeof(TiltOutputInfo) };
            Assert.Equal(TiltStatus.Ok, info(request, 0, &o));
            Assert.Equal(4, o.NTokens);
            nuint count;
            var values = new double[4];
            fixed (double* v = values)
                Assert.Equal(TiltStatus.Ok, logprobs(request, 0, v, 4, &count));
            Assert.Equal(4u, (uint)count);
            // The tabular model's probabilities are exact (float logits: 1e-6).
            double exact = tabular.SequenceLogProbability([], tabular.Tokenize("the cat was happy", addBos: false));
            Assert.Equal(exact, values.Sum(), 6);
            Assert.Equal(o.LogProb, values.Sum(), 9);
            var ids = new int[8];
            var alternatives = new double[8];
            fixed (int* i = ids)
            fixed (double* a = alternatives)
                Assert.Equal(TiltStatus.Ok, top(request, 0, i, a, 8, &count));
            Assert.Equal(8u, (uint)count);
            for (int t = 0; t < 4; t++)
            {
                Assert.True(alternatives[2 * t] >= alternatives[2 * t + 1]);      // most likely first
                Assert.True(alternatives[2 * t] >= values[t] - 1e-9);            // the row's best is at least the given token
            }
            Free(&Exports.RequestFree, request);

            // A continuation belongs to TILT_STRATEGY_SCORE alone, and scoring needs one.
            var create = (delegate* unmanaged[Cdecl]<nint, byte*, TiltRequestOptions*, nint, nint, nint*, int>)&Exports.RequestCreate;
            nint refused;
            var misplaced = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.Sample, Continuation = text };
            var missing = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.Score };
            var tooMany = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.Sample, TopLogprobs = 21 };
            fixed (byte* p = "\0"u8)
            {
                Assert.Equal(TiltStatus.InvalidArgument, create(model, p, &misplaced, 0, 0, &refused));
                Assert.Contains("continuation is only for TILT_STRATEGY_SCORE", _lastError);
                Assert.Equal(TiltStatus.InvalidArgument, create(model, p, &missing, 0, 0, &refused));
                Assert.Contains("continuation is NULL", _lastError);
                Assert.Equal(TiltStatus.InvalidArgument, create(model, p, &tooMany, 0, 0, &refused));
                Assert.Contains("top_logprobs must be 0..20", _lastError);
            }
        }

        // A sampled output's per-token values sum to its logprob; without asking there are none.
        var sample = MappingTests.HeaderDefaults() with { Strategy = (int)Strategy.Sample, MaxTokens = 5, Seed = 3, Logprobs = 1 };
        nint sampled = Create(model, "", sample, 0), plain = Create(model, "", sample with { Logprobs = 0 }, 0);
        Assert.Equal(TiltStatus.Ok, run(sampled, null, null));
        Assert.Equal(TiltStatus.Ok, run(plain, null, null));
        var si = new TiltOutputInfo { StructSize = (uint)sizeof(TiltOutputInfo) };
        Assert.Equal(TiltStatus.Ok, info(sampled, 0, &si));
        nuint n;
        var per = new double[si.NTokens];
        fixed (double* v = per)
            Assert.Equal(TiltStatus.Ok, logprobs(sampled, 0, v, (nuint)per.Length, &n));
        Assert.Equal(si.LogProb, per.Sum(), 4);
        Assert.Equal(TiltStatus.InvalidArgument, logprobs(plain, 0, null, 0, &n));
        Assert.Contains("did not ask for log-probabilities", _lastError);
        Free(&Exports.RequestFree, sampled);
        Free(&Exports.RequestFree, plain);
        Free(&Exports.ModelFree, model);
    }

    [Fact]
    public void A_head_file_with_a_null_field_is_a_model_load_error_naming_the_field()
    {
        nint model = LoadTabular();
        string dir = Directory.CreateTempSubdirectory("tilt-interop-head-").FullName;
        try
        {
            string path = Path.Combine(dir, "null-sha.head");
            byte[] header = Encoding.UTF8.GetBytes("{\"format\":\"tilt-head/1\",\"kind\":\"linear\",\"role\":\"value\",\"modelFingerprint\":\"sha256:x\",\"hiddenSize\":2,\"weightsSha256\":null}");
            var length = new byte[4];
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(length, header.Length);
            File.WriteAllBytes(path, [.. "TILTHEAD"u8, .. length, .. header, .. new byte[12]]);
            var load = (delegate* unmanaged[Cdecl]<nint, byte*, nint*, int>)&Exports.ValueLoadHead;
            nint value = 0;
            fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0"))
                Assert.Equal(TiltStatus.ModelLoad, load(model, p, &value));
            Assert.Contains("field 'weightsSha256' is null", _lastError);
            Assert.Equal(0, value);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
        Free(&Exports.ModelFree, model);
    }

    [Fact]
    public void A_native_library_that_is_not_llama_is_refused_and_the_process_can_still_load_a_gguf_model()
    {
        string libc = new[] { "/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6" }.First(File.Exists);
        var load = (delegate* unmanaged[Cdecl]<byte*, TiltModelOptions*, nint*, int>)&Exports.ModelLoad;
        nint model = 0;
        fixed (byte* lib = Encoding.UTF8.GetBytes(libc + "\0"))
        fixed (byte* path = Encoding.UTF8.GetBytes(TestPaths.DefaultModel + "\0"))
        {
            var options = new TiltModelOptions { StructSize = (uint)sizeof(TiltModelOptions), Backend = 1, NativeLibrary = lib };
            Assert.Equal(TiltStatus.ModelLoad, load(path, &options, &model));
            Assert.Contains("is not a llama.cpp library", _lastError);
            Assert.Equal(0, model);

            options.NativeLibrary = null;
            Assert.True(load(path, &options, &model) == TiltStatus.Ok, _lastError);
        }
        Free(&Exports.ModelFree, model);
    }

    /// <summary>Issue 25: a device as the model is TILT_STATUS_MODEL_LOAD with a message naming it, never a hang or a crash.</summary>
    [Fact]
    public void A_device_as_the_model_is_a_model_load_status_naming_it()
    {
        var load = (delegate* unmanaged[Cdecl]<byte*, TiltModelOptions*, nint*, int>)&Exports.ModelLoad;
        var options = new TiltModelOptions { StructSize = (uint)sizeof(TiltModelOptions), Backend = 1 };
        nint model = 0;
        fixed (byte* path = "/dev/zero\0"u8)
            Assert.Equal(TiltStatus.ModelLoad, load(path, &options, &model));
        Assert.Contains("/dev/zero: is a character device, not a regular file", _lastError);
        Assert.Equal(0, model);
    }

    private static nint LoadTabular()
    {
        var load = (delegate* unmanaged[Cdecl]<byte*, TiltModelOptions*, nint*, int>)&Exports.ModelLoad;
        var options = new TiltModelOptions { StructSize = (uint)sizeof(TiltModelOptions), Backend = 1 };
        nint model;
        fixed (byte* path = Encoding.UTF8.GetBytes(TestPaths.TabularExample + "\0"))
            Assert.True(load(path, &options, &model) == TiltStatus.Ok, _lastError);
        return model;
    }

    private static nint Create(nint model, string prompt, TiltRequestOptions options, nint reward)
    {
        var create = (delegate* unmanaged[Cdecl]<nint, byte*, TiltRequestOptions*, nint, nint, nint*, int>)&Exports.RequestCreate;
        nint request;
        fixed (byte* p = Encoding.UTF8.GetBytes(prompt + "\0"))
            Assert.True(create(model, p, &options, reward, 0, &request) == TiltStatus.Ok, _lastError);
        return request;
    }

    private static string Text(nint request)
    {
        var text = (delegate* unmanaged[Cdecl]<nint, int, byte*, nuint, nuint*, int>)&Exports.RequestOutputText;
        nuint need;
        Assert.Equal(TiltStatus.BufferTooSmall, text(request, 0, null, 0, &need));
        var buffer = new byte[(int)need];
        fixed (byte* b = buffer)
            Assert.Equal(TiltStatus.Ok, text(request, 0, b, need, &need));
        return Encoding.UTF8.GetString(buffer, 0, buffer.Length - 1);
    }

    private static void Free(delegate* unmanaged[Cdecl]<nint, int> free, nint handle) => Assert.Equal(TiltStatus.Ok, free(handle));

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void CaptureError(byte* message) => _lastError = Marshal.PtrToStringUTF8((nint)message);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int TextLength(void* userData, byte* prompt, byte* text, int finished, double* reward)
    {
        string s = Marshal.PtrToStringUTF8((nint)text)!;
        *reward = s.Length;
        (_rewardCalls ??= []).Add((s, s.Length));
        return 0;
    }
}
