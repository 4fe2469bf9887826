using System.Globalization;
using System.Text;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>What a sequence classifier reads of a candidate.</summary>
public enum ClassifierInput
{
    /// <summary>The pair (prompt, response), as reward models trained on (question, answer) pairs expect. Spec: <c>input=prompt+response</c>.</summary>
    PromptAndResponse,

    /// <summary>The response text alone, as a plain text classifier (sentiment, toxicity) expects. Spec: <c>input=response</c>.</summary>
    Response,
}

/// <summary>Options of the neural rewards <see cref="OnnxClassifierReward"/> and <see cref="SimilarityReward"/>.</summary>
public sealed record NeuralRewardOptions
{
    /// <summary>The longest <see cref="MaxLength"/> accepted.</summary>
    public const int MaxMaxLength = 8192;

    /// <summary>The defaults: tokenizer beside the model, 512 tokens, CPU, label 0, prompt and response.</summary>
    public static NeuralRewardOptions Default { get; } = new();

    /// <summary>
    /// The tokenizer file: a WordPiece <c>vocab.txt</c> or a <c>tokenizer.json</c> with a WordPiece, BPE or Unigram model. Defaults
    /// to null: <c>tokenizer.json</c> beside the model when there is one, else <c>vocab.txt</c> beside it.
    /// </summary>
    public string? TokenizerPath { get; init; }

    /// <summary>
    /// Tokens per text, [CLS] and [SEP] included; longer texts are truncated (their end is cut). Defaults to 512,
    /// the position count of BERT-family models (MiniLM, DeBERTa): a model with fewer positions needs a smaller value,
    /// which loading checks. Between 3 and <see cref="MaxMaxLength"/>.
    /// </summary>
    public int MaxLength
    {
        get;
        init => field = value is >= 3 and <= MaxMaxLength
            ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxLength), value, $"max-length must be between 3 and {MaxMaxLength}");
    } = 512;

    /// <summary>Where the graph runs. Defaults to <see cref="OnnxDevice.Cpu"/>.</summary>
    public OnnxDevice Device { get; init; } = OnnxDevice.Cpu;

    /// <summary>The largest <see cref="IntraOpThreads"/> accepted.</summary>
    public const int MaxIntraOpThreads = 1024;

    /// <summary>
    /// Threads ONNX Runtime uses inside one operator (intra-op), 1..<see cref="MaxIntraOpThreads"/>; spec
    /// <c>threads=N</c>. Set it when the reward shares the CPU with the decoding model. Defaults to null: ONNX
    /// Runtime's own default (one per physical core).
    /// </summary>
    public int? IntraOpThreads
    {
        get;
        init => field = value is null or (>= 1 and <= MaxIntraOpThreads)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), value, $"threads must be between 1 and {MaxIntraOpThreads}");
    }

    /// <summary>The graph optimization level; spec <c>optimization=all|extended|basic|none</c>. Defaults to <see cref="OnnxGraphOptimization.All"/>.</summary>
    public OnnxGraphOptimization GraphOptimization { get; init; } = OnnxGraphOptimization.All;

    /// <summary>The session these options ask for (one shared session per model file and settings).</summary>
    public OnnxSessionSettings Session => new(Device, IntraOpThreads, GraphOptimization);

    /// <summary>The classifier's logit that is the reward. Defaults to 0 (the only logit of a one-logit reward model). &gt;= 0.</summary>
    public int Label
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(Label), value, "label must be >= 0");
    }

    /// <summary>What the classifier reads. Defaults to <see cref="ClassifierInput.PromptAndResponse"/>.</summary>
    public ClassifierInput Input { get; init; } = ClassifierInput.PromptAndResponse;

    /// <summary>The tokenizer file for <paramref name="modelPath"/>: explicit, else tokenizer.json, else vocab.txt beside it.</summary>
    /// <exception cref="TiltException">No tokenizer was named and neither file is beside the model.</exception>
    internal string ResolveTokenizer(string modelPath)
    {
        if (TokenizerPath is not null)
        {
            return Path.GetFullPath(TokenizerPath);
        }

        string folder = Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        string json = Path.Combine(folder, "tokenizer.json");
        string vocab = Path.Combine(folder, "vocab.txt");
        if (File.Exists(json))
        {
            return json;
        }

        if (File.Exists(vocab))
        {
            return vocab;
        }

        throw new TiltException($"{modelPath}: no tokenizer beside the model ({vocab} or {json} not found); name one with tokenizer=FILE");
    }

    /// <summary>
    /// The options part of a spec, ",key=value" for every option that differs from the default (classifier options
    /// only when <paramref name="classifier"/>), so a description parses back to the same reward.
    /// </summary>
    internal string Describe(bool classifier)
    {
        var text = new StringBuilder();
        if (classifier && Label != 0)
        {
            text.Append(",label=").Append(Label.ToString(CultureInfo.InvariantCulture));
        }

        if (classifier && Input != ClassifierInput.PromptAndResponse)
        {
            text.Append(",input=response");
        }

        if (MaxLength != Default.MaxLength)
        {
            text.Append(",max-length=").Append(MaxLength.ToString(CultureInfo.InvariantCulture));
        }

        if (TokenizerPath is not null)
        {
            text.Append(",tokenizer=").Append(Path.GetFullPath(TokenizerPath));
        }

        if (Device != OnnxDevice.Cpu)
        {
            text.Append(",device=cuda");
        }

        if (IntraOpThreads is int threads)
        {
            text.Append(",threads=").Append(threads.ToString(CultureInfo.InvariantCulture));
        }

        if (GraphOptimization != OnnxGraphOptimization.All)
        {
            text.Append(",optimization=").Append(GraphOptimization.ToString().ToLowerInvariant());
        }

        return text.ToString();
    }

    /// <summary>
    /// Parses <c>MODEL[,key=value]...</c> of an <c>onnx:</c> or <c>similarity:</c> spec. Keys: tokenizer, max-length,
    /// device (cpu|cuda), and for a classifier label and input (response|prompt+response). Relative paths resolve
    /// against <paramref name="resolve"/>.
    /// </summary>
    /// <exception cref="TiltException">An unknown key, a bad value, a repeated key or no model path.</exception>
    internal static (string Model, NeuralRewardOptions Options) Parse(string argument, bool classifier, Func<string, string> resolve)
    {
        string[] parts = argument.Split(',');
        string model = parts[0].Trim();
        if (model.Length == 0)
        {
            throw new TiltException($"missing model path in '{argument}' (write MODEL.onnx[,key=value...])");
        }

        string keys = classifier ? "label, input, max-length, tokenizer, device, threads, optimization" : "max-length, tokenizer, device, threads, optimization";
        var options = new NeuralRewardOptions();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string part in parts.Skip(1))
        {
            int equals = part.IndexOf('=');
            string key = (equals < 0 ? part : part[..equals]).Trim();
            string value = equals < 0 ? "" : part[(equals + 1)..].Trim();
            if (equals < 0 || value.Length == 0)
            {
                throw new TiltException($"option '{part.Trim()}' in '{argument}' needs a value, written key=value (keys: {keys})");
            }

            if (!seen.Add(key))
            {
                throw new TiltException($"option '{key}' is given twice in '{argument}'");
            }

            options = key switch
            {
                "max-length" => options with { MaxLength = Int(key, value, min: 3, max: MaxMaxLength) },
                "tokenizer" => options with { TokenizerPath = resolve(value) },
                "device" => new NeuralRewardOptions(options)
                {
                    Device = value switch
                    {
                        "cpu" => OnnxDevice.Cpu,
                        "cuda" => OnnxDevice.Cuda,
                        _ => throw new TiltException($"bad device '{value}' in '{argument}' (cpu or cuda)"),
                    },
                },
                "threads" => options with { IntraOpThreads = Int(key, value, min: 1, max: MaxIntraOpThreads) },
                "optimization" => new NeuralRewardOptions(options)
                {
                    GraphOptimization = value switch
                    {
                        "all" => OnnxGraphOptimization.All,
                        "extended" => OnnxGraphOptimization.Extended,
                        "basic" => OnnxGraphOptimization.Basic,
                        "none" => OnnxGraphOptimization.None,
                        _ => throw new TiltException($"bad optimization '{value}' in '{argument}' (all, extended, basic or none)"),
                    },
                },
                "label" when classifier => options with { Label = Int(key, value, min: 0, max: int.MaxValue) },
                "input" when classifier => new NeuralRewardOptions(options)
                {
                    Input = value switch
                    {
                        "prompt+response" => ClassifierInput.PromptAndResponse,
                        "response" => ClassifierInput.Response,
                        _ => throw new TiltException($"bad input '{value}' in '{argument}' (response or prompt+response)"),
                    },
                },
                _ => throw new TiltException($"unknown option '{key}' in '{argument}' (keys: {keys})"),
            };
        }

        return (resolve(model), options);
    }

    private static int Int(string key, string value, int min, int max) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= min && n <= max
            ? n
            : throw new TiltException($"bad {key} '{value}' (a whole number between {min} and {max})");
}
