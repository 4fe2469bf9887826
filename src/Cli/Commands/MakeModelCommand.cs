using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Text;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt make-model</c>: random-weight llama GGUF models of realistic size for benchmarks.</summary>
internal static class MakeModelCommand
{
    public static Command Create(CliConsole console)
    {
        var preset = new Option<string?>("--preset") { Description = "15m | 110m | 1b (llama2.c stories15M / stories110M, TinyLlama-1.1B shapes)." };
        var dim = new Option<int?>("--dim") { Description = "Embedding width (overrides the preset)." };
        var layers = new Option<int?>("--layers") { Description = $"Transformer blocks (1..{ModelShape.MaxLayers}, llama.cpp's limit)." };
        var heads = new Option<int?>("--heads") { Description = "Attention heads." };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "Key/value heads (default: heads)." };
        var ff = new Option<int?>("--ff") { Description = "Feed-forward width." };
        var vocab = new Option<int>("--vocab") { Description = $"Synthesized vocabulary size, {259 + 26}..{ModelShape.MaxVocabulary} (256 byte tokens + generated pieces).", DefaultValueFactory = _ => 32000 };
        var vocabFrom = new Option<string?>("--vocab-from") { Description = "Copy the vocabulary of this GGUF file instead." };
        var type = new Option<string>("--type") { Description = "f32 | f16 | q8_0.", DefaultValueFactory = _ => "f16" };
        var seed = new Option<ulong>("--seed") { Description = "Weight seed.", DefaultValueFactory = _ => 1UL };
        var output = new Option<string?>("--out", "-o") { Description = "Output file (default: $TILT_CACHE/models or ~/.cache/tilt/models)." };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing file." };
        var chatTemplate = new Option<string?>("--chat-template")
        {
            Description = "Write this tokenizer.chat_template: a name llama.cpp knows (chatml, llama2, zephyr, ...) or a Jinja template's text.",
        };
        var chatTemplateFile = new Option<string?>("--chat-template-file") { Description = "Write the Jinja chat template in this file as tokenizer.chat_template." };

        var command = new Command("make-model", "Write a random-weight llama GGUF model of a chosen shape (for benchmarks; never commit it).");
        foreach (var o in new Option[] { preset, dim, layers, heads, kvHeads, ff, vocab, vocabFrom, type, seed, output, force, chatTemplate, chatTemplateFile }) command.Options.Add(o);
        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            await Task.Yield();
            var baseShape = parse.GetValue(preset) is { } name
                ? ModelShape.Presets.FirstOrDefault(p => p.Name == name.ToLowerInvariant())
                  ?? throw new ArgumentException($"--preset must be one of {string.Join(", ", ModelShape.Presets.Select(p => p.Name))}, got '{name}'")
                : null;
            if (baseShape is null && (parse.GetValue(dim) is null || parse.GetValue(layers) is null || parse.GetValue(heads) is null || parse.GetValue(ff) is null))
                throw new ArgumentException("give --preset, or all of --dim, --layers, --heads and --ff");
            int h = parse.GetValue(heads) ?? baseShape!.Heads;
            var shape = new ModelShape(
                baseShape?.Name ?? "custom",
                parse.GetValue(dim) ?? baseShape!.Dim,
                parse.GetValue(layers) ?? baseShape!.Layers,
                h,
                parse.GetValue(kvHeads) ?? (parse.GetValue(heads) is null ? baseShape!.KvHeads : h),
                parse.GetValue(ff) ?? baseShape!.FeedForward);
            var tensorType = parse.GetValue(type)!.ToLowerInvariant() switch
            {
                "f32" => GgufTensorType.F32,
                "f16" => GgufTensorType.F16,
                "q8_0" => GgufTensorType.Q8_0,
                var t => throw new ArgumentException($"--type must be f32, f16 or q8_0, got '{t}'"),
            };
            // Every limit up front, the vocabulary's too (a huge --vocab would otherwise be synthesized before any check).
            shape.Validate(tensorType, parse.GetValue(vocabFrom) is null ? parse.GetValue(vocab) : null);
            if (parse.GetValue(chatTemplate) is not null && parse.GetValue(chatTemplateFile) is not null)
                throw new ArgumentException("give --chat-template or --chat-template-file, not both");
            string? template = parse.GetValue(chatTemplateFile) is { } file ? ReadTemplate(file) : parse.GetValue(chatTemplate);
            if (template is { Length: 0 }) throw new ArgumentException("--chat-template is empty");
            var vocabulary = parse.GetValue(vocabFrom) is { } from
                ? SentencePieceVocabulary.CopyFrom(from)
                : SentencePieceVocabulary.Synthesize(parse.GetValue(vocab));
            string? given = parse.GetValue(output);
            if (given is not null) AtomicFile.CheckTarget(given);
            string path = given is not null
                ? Path.GetFullPath(given)
                : Path.Combine(SyntheticModel.CacheDirectory, $"{shape.Name}-{tensorType.ToString().ToLowerInvariant()}-v{vocabulary.Tokens.Length}-s{parse.GetValue(seed)}.gguf");
            if (File.Exists(path) && !parse.GetValue(force))
            {
                console.Out.WriteLine(path);
                console.Error.WriteLine($"{path} exists (use --force to rewrite it)");
                return 0;
            }
            var clock = Stopwatch.StartNew();
            long bytes = SyntheticModel.Write(path, shape, vocabulary, tensorType, parse.GetValue(seed),
                new PercentProgress(percent => console.Error.Write($"\rwriting {percent}%")), template, cancellationToken);
            console.Error.WriteLine();
            console.Error.WriteLine($"{shape.Name}: d={shape.Dim}, {shape.Layers} layers, {shape.Heads}/{shape.KvHeads} heads, ff={shape.FeedForward}, vocab {vocabulary.Tokens.Length}, " +
                                    $"{shape.Parameters(vocabulary.Tokens.Length):N0} parameters, {tensorType}, {bytes / 1048576.0:F1} MiB in {clock.Elapsed.TotalSeconds:F1} s");
            console.Out.WriteLine(path);
            return 0;
        }));
        return command;
    }

    private static string ReadTemplate(string path)
    {
        try
        {
            return TextFile.ReadAllText(path, "chat template file");
        }
        catch (TiltException e)
        {
            throw new TiltException($"--chat-template-file {path}: {e.Message}", e);
        }
    }
}

/// <summary>Reports on the writer's own thread (Progress&lt;T&gt; would post out of order), once per whole percent.</summary>
internal sealed class PercentProgress(Action<int> report) : IProgress<double>
{
    private int _last = -1;

    public void Report(double value)
    {
        int percent = (int)(value * 100);
        if (percent == _last) return;
        _last = percent;
        report(percent);
    }
}
