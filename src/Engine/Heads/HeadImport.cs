using System.Globalization;
using System.Text.Json;
using Tilt.Engine.Models.Gguf;

namespace Tilt.Engine.Heads;

/// <summary>What <see cref="HeadImport.FromSafetensors(HeadImportOptions)"/> reads: a score head of a Hugging Face model and its backbone.</summary>
public sealed record HeadImportOptions
{
    /// <summary>The safetensors file holding the head (a whole checkpoint shard or a file with the head alone).</summary>
    public required string SafetensorsPath { get; init; }

    /// <summary>
    /// The weight tensor: [hidden] or [labels, hidden] (PyTorch's Linear layout), e.g. <c>score.weight</c>
    /// (LlamaForSequenceClassification) or <c>v_head.summary.weight</c> (TRL's value head).
    /// </summary>
    public required string Tensor { get; init; }

    /// <summary>The bias tensor ([labels], [1] or a scalar), or null for none (HF's sequence-classification score has none). Defaults to null.</summary>
    public string? BiasTensor { get; init; }

    /// <summary>Which row of a [labels, hidden] weight to keep; required when labels > 1. Defaults to null.</summary>
    public int? Label
    {
        get;
        init => field = value is null or >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(Label), value, $"the label must be >= 0, got {value}");
    }

    /// <summary>The backbone converted to GGUF whose final hidden states the head reads (its fingerprint goes into the head file).</summary>
    public required string BackbonePath { get; init; }
}

/// <summary>
/// Turns the score head of a Hugging Face reward model (r = w . h_last + b on the final, normed hidden state of the
/// last token) into a linear reward head file (docs/head-file.md) bound to the GGUF backbone, for <c>rm:</c>.
/// </summary>
public static class HeadImport
{
    /// <summary>Reads the head and checks it against the backbone's hidden size; the caller writes it.</summary>
    /// <exception cref="TiltException">A bad file, a missing tensor (listing the file's tensors), a shape that does not
    /// match the backbone's hidden size (naming both), several labels and no <see cref="HeadImportOptions.Label"/>, or
    /// non-finite weights.</exception>
    public static HeadFile FromSafetensors(HeadImportOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string backbone = Path.GetFullPath(options.BackbonePath);
        var gguf = GgufHeader.Read(backbone);
        int hidden = checked((int)(GgufHyperParameters.FromHeader(gguf).Embedding
                                   ?? throw new TiltException($"{backbone}: the GGUF file declares no embedding_length (the hidden size)")));
        return FromSafetensors(options, hidden, GgufModel.Sha256Fingerprint(backbone));
    }

    /// <summary>
    /// The head for a backbone whose hidden size and fingerprint are known (a loaded model's <c>ModelInfo</c>), so a
    /// large GGUF file is not hashed a second time.
    /// </summary>
    public static HeadFile FromSafetensors(HeadImportOptions options, int hidden, string fingerprint)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(fingerprint);
        string backbone = Path.GetFullPath(options.BackbonePath);
        var file = SafetensorsFile.Open(options.SafetensorsPath);
        var weight = file.Find(options.Tensor);
        (int labels, int width) = weight.Shape switch
        {
            [long d] => (1, checked((int)d)),
            [long l, long d] => (checked((int)l), checked((int)d)),
            _ => throw new TiltException($"{file.Path}: tensor '{weight.Name}' has shape {weight.ShapeText}; a score head is [hidden] or [labels, hidden]"),
        };
        if (width != hidden)
            throw new TiltException($"{file.Path}: tensor '{weight.Name}' {weight.ShapeText} reads hidden states of size {width}, but the backbone {backbone} has hidden size {hidden}");
        if (labels < 1)
            throw new TiltException($"{file.Path}: tensor '{weight.Name}' has shape {weight.ShapeText}: no labels");
        int label = options.Label ?? (labels == 1 ? 0
            : throw new TiltException($"{file.Path}: tensor '{weight.Name}' {weight.ShapeText} has {labels} labels; choose one with --label 0..{labels - 1} (label= in an rm: spec)"));
        if (label >= labels)
            throw new TiltException($"{file.Path}: --label {label} is outside tensor '{weight.Name}' {weight.ShapeText} (labels 0..{labels - 1})");

        float[] all = file.ReadFloats(weight);
        var weights = new float[hidden + 1]; // w[d] then b: docs/head-file.md's linear layout
        all.AsSpan(label * hidden, hidden).CopyTo(weights);
        if (options.BiasTensor is { } biasName)
        {
            var bias = file.Find(biasName);
            if (bias.ElementCount != labels || bias.Shape.Length > 1)
                throw new TiltException($"{file.Path}: bias tensor '{bias.Name}' has shape {bias.ShapeText}; the weight's {labels} label(s) need shape [{labels}]");
            weights[hidden] = file.ReadFloats(bias)[label];
        }
        if (Array.FindIndex(weights, w => !float.IsFinite(w)) is var bad and >= 0)
            throw new TiltException($"{file.Path}: tensor '{(bad < hidden ? weight.Name : options.BiasTensor)}' holds a non-finite value ({weights[bad]}) in label {label}");

        var training = new Dictionary<string, JsonElement>
        {
            ["method"] = JsonSerializer.SerializeToElement("import"),
            ["safetensors"] = JsonSerializer.SerializeToElement(file.Path),
            ["tensor"] = JsonSerializer.SerializeToElement(weight.Name),
            ["dtype"] = JsonSerializer.SerializeToElement(weight.DataType),
            ["label"] = JsonSerializer.SerializeToElement(label),
            ["labels"] = JsonSerializer.SerializeToElement(labels),
        };
        if (options.BiasTensor is not null) training["biasTensor"] = JsonSerializer.SerializeToElement(options.BiasTensor);
        var header = new HeadHeader
        {
            Kind = HeadKind.Linear,
            Role = HeadRole.Reward,
            ModelFingerprint = fingerprint,
            HiddenSize = hidden,
            Feature = "last",
            Normalized = false,
            Description = string.Create(CultureInfo.InvariantCulture,
                $"score head '{weight.Name}'{(labels > 1 ? $" label {label} of {labels}" : "")} imported from {Path.GetFileName(file.Path)} for {Path.GetFileName(backbone)}"),
            Training = training,
        };
        return new HeadFile(header, weights);
    }
}
