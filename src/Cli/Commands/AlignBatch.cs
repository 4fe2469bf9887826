using Tilt.Engine.Text;

namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt align --requests FILE.jsonl --out FILE.jsonl</c>: the offline batch mode (vLLM's <c>LLM.generate(prompts)</c>).
/// Every request line goes to one <see cref="DecodingEngine"/> at once, which decodes them in shared batches; results are
/// written one JSON object per output, in input order, with the <c>align --json</c> fields plus <c>line</c>.
/// </summary>
internal static class AlignBatch
{
    /// <summary>
    /// Request lines one run takes: every line is parsed, tokenized and queued up front, and the engine decodes them in
    /// shared batches of --max-sequences, so the wall clock grows with the line count (docs/serving.md).
    /// </summary>
    public const int MaxRequestLines = 100_000;

    /// <summary>
    /// The CLI's values: what a line's absent fields take. <paramref name="Fields"/> holds the strategy fields (its own
    /// strategy is replaced by the line's).
    /// </summary>
    public sealed record Defaults(string Strategy, string Prompt, string Reward, string? ValueHead, StrategySpec Fields, float Temperature, ulong Seed,
        int MaxTokens, StopSequences? Stop = null);

    /// <summary>One parsed line.</summary>
    private sealed record Line(int Number, StrategyEntry Strategy, DecodingRequest Request, string RewardSpec, string? ValueHead);

    public static async Task<int> RunAsync(CliConsole console, ILanguageModel model, IStepKernels kernels, string requestsPath, string outPath,
        Defaults defaults, int concurrency, int maxSequences, int? threads, CancellationToken cancellationToken)
    {
        if (concurrency < 0) throw new ArgumentException($"--concurrency must be >= 0 (0 = as many as fit), got {concurrency}");
        string fullOut = AtomicFile.CheckTarget(outPath);
        string[] requestLines = TextFile.ReadLines(requestsPath, "requests file");
        if (requestLines.Length > MaxRequestLines)
            throw new TiltException($"{Path.GetFullPath(requestsPath)}: {requestLines.Length} lines, more than the limit of {MaxRequestLines} requests per run; split the file");

        var rewards = new Dictionary<string, IReward>(StringComparer.Ordinal);
        var values = new Dictionary<string, IValueFunction>(StringComparer.Ordinal);
        var lines = new List<Line>();
        TiltException? badLine = null;
        int number = 0;
        foreach (string text in requestLines)
        {
            number++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            try
            {
                lines.Add(Parse(number, text, defaults, model, rewards, values));
            }
            catch (Exception e) when (e is TiltException or ArgumentException or JsonException)
            {
                // The lines before a bad one still run and are written; then the error is reported.
                badLine = new TiltException($"{Path.GetFullPath(requestsPath)}: line {number}: {CleanMessage(e)}");
                break;
            }
        }

        // Sized for the longest line, forced prefix included (it is decoded like more prompt).
        long longest = lines.Count == 0 ? 2 : lines.Max(l => DecodingEngine.CellsPerSequence(model, l.Request));
        using var engine = new DecodingEngine(model, kernels, new EngineOptions
        {
            MaxSequences = maxSequences,
            MaxSequenceLength = (int)Math.Min(int.MaxValue, longest + 1),
            MaxQueuedRequests = Math.Max(1, lines.Count),
            Threads = threads,
        });
        using var gate = new SemaphoreSlim(concurrency == 0 ? lines.Count + 1 : concurrency);
        var clock = Stopwatch.StartNew();
        var tasks = lines.Select(async line =>
        {
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return await engine.RunAsync(line.Request, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                gate.Release();
            }
        }).ToArray();

        // Written in input order as soon as each line (and every line before it) is done; atomically renamed at the end.
        long generated = 0, evaluated = 0;
        TiltException? failed = null;
        await AtomicFile.WriteAsync(fullOut, async stream =>
        {
            await using (var writer = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true))
            {
                for (int i = 0; i < lines.Count; i++)
                {
                    IReadOnlyList<AlignedSample> outputs;
                    try
                    {
                        outputs = await tasks[i].ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is TiltException or ArgumentException)
                    {
                        // Keep what the lines before it produced; report this one.
                        failed = new TiltException($"{Path.GetFullPath(requestsPath)}: line {lines[i].Number}: {CleanMessage(e)}");
                        break;
                    }
                    foreach (var s in outputs)
                    {
                        generated += s.Tokens.Count;
                        evaluated += s.TokensEvaluated;
                        await writer.WriteLineAsync(JsonSerializer.Serialize(ToJson(lines[i], s, model), CliJson.Options)).ConfigureAwait(false);
                    }
                }
            }
        }, cancellationToken).ConfigureAwait(false);
        double seconds = clock.Elapsed.TotalSeconds;
        console.Error.WriteLine($"[{lines.Count} requests, {generated} tokens generated in {seconds:F2} s: {generated / Math.Max(seconds, 1e-9):F0} tokens/s " +
                                $"({evaluated / Math.Max(seconds, 1e-9):F0} evaluated/s), concurrency {(concurrency == 0 ? "as many as fit" : concurrency)}, " +
                                $"{engine.Status.Iterations} scheduler iterations, {engine.Status.RunsPerDecode:F2} id runs per decode, " +
                                $"{engine.Status.SequenceMoves} sequence moves]");
        if ((failed ?? badLine) is { } error) throw error;
        return 0;
    }

    private static Line Parse(int number, string text, Defaults d, ILanguageModel model, Dictionary<string, IReward> rewards,
        Dictionary<string, IValueFunction> values)
    {
        using var doc = JsonDocument.Parse(text);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new TiltException("a request line must be a JSON object");
        string? strategy = d.Strategy;
        string prompt = d.Prompt, rewardSpec = d.Reward;
        string? valueHead = d.ValueHead;
        var fields = d.Fields;
        int maxTokens = d.MaxTokens;
        float temperature = d.Temperature;
        ulong seed = d.Seed;
        uint requestId = 0;
        string? prefill = null;
        IReadOnlyList<string> stopStrings = d.Stop?.Strings ?? [];
        IReadOnlyList<int> stopIds = d.Stop?.TokenIds ?? [];
        bool includeStop = d.Stop?.IncludeStop ?? false;
        int? topLogprobs = null;
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            var v = p.Value;
            switch (p.Name)
            {
                case "prompt": prompt = Str(p); break;
                case StrategyFields.Strategy: strategy = Str(p); break;
                case "reward": rewardSpec = Str(p); break;
                case "value_head": valueHead = v.ValueKind == JsonValueKind.Null ? null : Str(p); break;
                case StrategyFields.N: fields = fields with { N = Int(p) }; break;
                case StrategyFields.K: fields = fields with { K = Int(p) }; break;
                case StrategyFields.Block: fields = fields with { Block = Int(p) }; break;
                case StrategyFields.Beams: fields = fields with { Beams = Int(p) }; break;
                case StrategyFields.TopK: fields = fields with { TopK = Int(p) }; break;
                case StrategyFields.Samples: fields = fields with { Samples = Int(p) }; break;
                case StrategyFields.Beta: fields = fields with { Beta = Num(p) }; break;
                case StrategyFields.Alpha: fields = fields with { Alpha = Num(p) }; break;
                case StrategyFields.Lambda: fields = fields with { Lambda = Num(p) }; break;
                case StrategyFields.Every: fields = fields with { Every = Int(p) }; break;
                case StrategyFields.DecideAt: fields = fields with { DecideAt = Int(p) }; break;
                case StrategyFields.Selection: fields = fields with { Selection = Catalogued(() => StrategyCatalog.ParseSelection(Str(p))) }; break;
                case StrategyFields.ReturnCandidates: fields = fields with { ReturnCandidates = Bool(p) }; break;
                case "max_tokens": maxTokens = Int(p); break;
                case "temperature": temperature = (float)Num(p); break;
                case "seed": seed = v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong s) ? s : throw Field(p, "a non-negative integer"); break;
                case "prefill": prefill = v.ValueKind == JsonValueKind.Null ? null : Str(p); break;
                case "request_id": requestId = v.ValueKind == JsonValueKind.Number && v.TryGetUInt32(out uint id) ? id : throw Field(p, "an integer 0..4294967295"); break;
                case "stop":
                    stopStrings = v.ValueKind switch
                    {
                        JsonValueKind.Null => [],
                        JsonValueKind.String => [v.GetString()!],
                        JsonValueKind.Array when v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String) => v.EnumerateArray().Select(e => e.GetString()!).ToArray(),
                        _ => throw Field(p, "a string or an array of strings"),
                    };
                    break;
                case "stop_token_ids":
                    stopIds = v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out _))
                        ? v.EnumerateArray().Select(e => e.GetInt32()).ToArray()
                        : throw Field(p, "an array of token ids");
                    break;
                case "logprobs": topLogprobs = v.ValueKind == JsonValueKind.Null ? null : Int(p); break;
                case "include_stop": includeStop = Bool(p); break;
                default: throw new TiltException($"unknown field '{p.Name}' (known: prompt, strategy, reward, value_head, n, k, block, beta, alpha, lambda, every, top_k, temperature, seed, request_id, prefill, max_tokens, samples, selection, return_candidates, stop, stop_token_ids, include_stop, logprobs)");
            }
        }

        var entry = Catalogued(() => StrategyCatalog.Parse(strategy));
        AlignOptions options = Catalogued(() => (fields with { Strategy = entry.Strategy }).Build(new StrategyLimits { MaxTokens = maxTokens }));
        try
        {
            var stop = new StopSequences { Strings = stopStrings, TokenIds = stopIds, IncludeStop = includeStop };
            options = options with
            {
                MaxTokens = maxTokens, Seed = seed, Sampling = new SamplingParameters(temperature), RequestId = requestId,
                Stop = stop.IsEmpty ? null : stop,
                Logprobs = topLogprobs is not null,
                TopLogprobs = topLogprobs ?? 0,
            };
        }
        catch (ArgumentException e)
        {
            throw new TiltException($"field '{FieldName(e.ParamName)}': {CleanMessage(e)}");
        }

        if (!rewards.TryGetValue(rewardSpec, out var reward))
        {
            try
            {
                reward = RewardSpec.Parse(rewardSpec, new RewardSpecContext { HeadRewardFactory = path => HeadReward.Load(path, model.Info) });
            }
            catch (Exception e) when (e is TiltException or ArgumentException)
            {
                throw new TiltException($"field 'reward': {CleanMessage(e)}");
            }
            rewards[rewardSpec] = reward;
        }
        IValueFunction? value = null;
        if (valueHead is not null && !values.TryGetValue(valueHead, out value))
        {
            try
            {
                value = HeadValue.Load(valueHead, model.Info);
            }
            catch (Exception e) when (e is TiltException or ArgumentException or IOException)
            {
                throw new TiltException($"field 'value_head': {CleanMessage(e)}");
            }
            values[valueHead] = value;
        }
        return new Line(number, entry, new DecodingRequest { Prompt = prompt, Options = options, Reward = reward, Value = value, ForcedPrefix = prefill }, rewardSpec, valueHead);
    }

    private static string Str(JsonProperty p) => p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : throw Field(p, "a string");

    private static int Int(JsonProperty p) => p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt32(out int v) ? v : throw Field(p, "an integer");

    private static double Num(JsonProperty p) =>
        p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetDouble(out double v) && double.IsFinite(v) ? v : throw Field(p, "a finite number");

    private static bool Bool(JsonProperty p) =>
        p.Value.ValueKind is JsonValueKind.True or JsonValueKind.False ? p.Value.GetBoolean() : throw Field(p, "true or false");

    /// <summary>Runs a catalogue step; a bad field is reported as the line's field (the catalogue's names are the line's).</summary>
    private static T Catalogued<T>(Func<T> step)
    {
        try
        {
            return step();
        }
        catch (StrategyFieldException e)
        {
            throw new TiltException($"field '{e.Field}': {e.Message}");
        }
    }

    private static TiltException Field(JsonProperty p, string expected) =>
        new($"field '{p.Name}': expected {expected}, got {p.Value.GetRawText()}");

    /// <summary>The line's name of a shared decoding field the engine's options refused.</summary>
    private static string FieldName(string? param) => param switch
    {
        "MaxTokens" => "max_tokens",
        "Temperature" => "temperature",
        "TopLogprobs" => "logprobs",
        _ => param ?? "?",
    };

    private static string CleanMessage(Exception e)
    {
        string m = e.Message;
        int cut = m.IndexOf(" (Parameter '", StringComparison.Ordinal);
        return (cut > 0 ? m[..cut] : m).ReplaceLineEndings(" ");
    }

    private static SampleJson ToJson(Line line, AlignedSample s, ILanguageModel model) => CliJson.Sample(s, line.Strategy.Name, line.RewardSpec,
        !line.Strategy.ReadsValue ? null : line.ValueHead is { } head ? $"head:{Path.GetFileName(head)}" : $"prefix({line.Request.Reward!.Description})",
        model, line.Number, line.Request.Prompt);
}
