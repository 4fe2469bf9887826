namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt score</c>: log p of a given text after a prompt, token by token (teacher forcing), as log-likelihood evaluations
/// need it: the sum, a greedy-match flag and each token's log p with its top alternatives. A JSONL file of pairs is scored
/// through one engine, its requests batched together.
/// </summary>
internal static class ScoreCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new ModelOptions();
        var prompt = new Option<string>("--prompt", "-p") { Description = "The context the text is scored after.", DefaultValueFactory = _ => "" };
        var text = new Option<string?>("--text") { Description = "The text to score (its tokens are those of prompt + text after the prompt's own)." };
        var pairs = new Option<string?>("--pairs") { Description = "A JSONL file of {\"prompt\": ..., \"text\": ...} lines, scored together; one result line each, in order." };
        var top = new Option<int>("--top") { Description = "Alternatives per token (0..20).", DefaultValueFactory = _ => 0 };
        var includePrompt = new Option<bool>("--include-prompt") { Description = "Also score the prompt's tokens (the first has no prefix: null)." };
        var maxSequences = new Option<int>("--max-sequences") { Description = "With --pairs: texts scored at once (one sequence each).", DefaultValueFactory = _ => 16 };

        var command = new Command("score", "Score a given text after a prompt: per-token log p under the base model (T = 1), their sum and whether greedy decoding would have produced it. One JSON object per line.");
        model.AddTo(command);
        foreach (var o in new Option[] { prompt, text, pairs, top, includePrompt, maxSequences }) command.Options.Add(o);

        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            var items = new List<(string Prompt, string Text)>();
            if (parse.GetValue(pairs) is { } file)
            {
                if (parse.GetValue(text) is not null) throw new ArgumentException("give either --text or --pairs, not both");
                int number = 0;
                foreach (var line in await File.ReadAllLinesAsync(file, cancellationToken))
                {
                    number++;
                    if (line.Trim().Length == 0) continue;
                    try
                    {
                        using var doc = JsonDocument.Parse(line);
                        var root = doc.RootElement;
                        string p = root.TryGetProperty("prompt", out var pe) && pe.ValueKind == JsonValueKind.String ? pe.GetString()! : "";
                        string t = root.TryGetProperty("text", out var te) && te.ValueKind == JsonValueKind.String
                            ? te.GetString()!
                            : throw new TiltException("field 'text': expected a string");
                        items.Add((p, t));
                    }
                    catch (Exception e) when (e is JsonException or TiltException)
                    {
                        throw new TiltException($"{file} line {number}: {e.Message}");
                    }
                }
            }
            else
            {
                items.Add((parse.GetValue(prompt)!, parse.GetValue(text) ?? throw new ArgumentException("give --text TEXT (or --pairs FILE.jsonl)")));
            }
            int topN = parse.GetValue(top);
            if (topN is < 0 or > Tilt.Kernels.TopLogProbs.MaxN) throw new ArgumentException($"--top must be between 0 and {Tilt.Kernels.TopLogProbs.MaxN}, got {topN}");

            using var lm = model.LoadModel(parse, console);
            using var kernels = model.CreateKernels(parse, console);
            int longest = items.Max(i => lm.Tokenize(i.Prompt + i.Text).Length + lm.Tokenize(i.Text, addBos: false).Length);
            using var engine = new DecodingEngine(lm, kernels, new EngineOptions
            {
                MaxSequences = Math.Clamp(parse.GetValue(maxSequences), 1, Math.Max(1, items.Count)),
                MaxSequenceLength = longest + 8,
                MaxQueuedRequests = Math.Max(1, items.Count),
                Threads = model.GetThreads(parse),
            });
            bool withPrompt = parse.GetValue(includePrompt);
            var scores = await Task.WhenAll(items.Select(i => engine.ScoreAsync(i.Prompt, i.Text, topN, withPrompt, cancellationToken)));
            for (int i = 0; i < items.Count; i++)
                await console.Out.WriteLineAsync(JsonSerializer.Serialize(ToJson(items[i].Prompt, scores[i], lm), CliJson.Options));
            return 0;
        }));
        return command;
    }

    private static object ToJson(string prompt, ScoreResult s, ILanguageModel model) => new
    {
        Prompt = prompt,
        s.Text,
        s.Tokens,
        Logprob = s.LogProb,
        s.IsGreedy,
        TokenLogprobs = CliJson.TokenLogprobs(model, s.TokenLogProbs),
        PromptLogprobs = CliJson.TokenLogprobs(model, s.PromptLogProbs),
        s.TokensEvaluated,
    };
}
