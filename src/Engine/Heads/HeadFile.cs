using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Tilt.Engine.IO;
using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Engine.Heads;

/// <summary>The architecture of a head.</summary>
public enum HeadKind
{
    /// <summary>h . w + b.</summary>
    Linear,

    /// <summary>w2 . act(W1 h + b1) + b2.</summary>
    Mlp,
}

/// <summary>What a head was trained to predict.</summary>
public enum HeadRole
{
    /// <summary>V(x, y^t): expected final reward of a prefix (CD-FUDGE, CD-Q) [M13].</summary>
    Value,

    /// <summary>r(x, y) of a finished text (Bradley-Terry, classifier) [M20].</summary>
    Reward,
}

/// <summary>The JSON header of a head file (docs/head-file.md).</summary>
public sealed record HeadHeader
{
    public const string CurrentFormat = "tilt-head/1";

    // Required in a file (docs/head-file.md): a missing format, kind or role is refused, never defaulted.
    [JsonPropertyName("format"), JsonRequired] public string Format { get; init; } = CurrentFormat;
    [JsonPropertyName("kind"), JsonRequired] public HeadKind Kind { get; init; }
    [JsonPropertyName("role"), JsonRequired] public HeadRole Role { get; init; }

    /// <summary>The <see cref="ModelInfo.Fingerprint"/> of the model whose hidden states the head reads.</summary>
    [JsonPropertyName("modelFingerprint")] public required string ModelFingerprint { get; init; }

    /// <summary>Width of the hidden states (d).</summary>
    [JsonPropertyName("hiddenSize")] public required int HiddenSize { get; init; }

    /// <summary>Units of the MLP's hidden layer; 0 for linear heads.</summary>
    [JsonPropertyName("hiddenUnits")] public int HiddenUnits { get; init; }

    [JsonPropertyName("activation")] public HeadActivation Activation { get; init; } = HeadActivation.Relu;

    /// <summary>"last": the hidden state after the last token. (The only feature strategies can supply while decoding.)</summary>
    [JsonPropertyName("feature")] public string Feature { get; init; } = "last";

    /// <summary>True when the weights start with per-feature mean[d] and std[d] applied as (h - mean) / std.</summary>
    [JsonPropertyName("normalized")] public bool Normalized { get; init; }

    /// <summary>sha256 of the float32 weight bytes, to catch corruption.</summary>
    [JsonPropertyName("weightsSha256")] public string WeightsSha256 { get; init; } = "";

    [JsonPropertyName("description")] public string? Description { get; init; }

    /// <summary>Free-form training facts (method, data, held-out metrics).</summary>
    [JsonPropertyName("training")] public Dictionary<string, JsonElement>? Training { get; init; }

    /// <summary>
    /// Optional (value heads; <c>tilt train value</c> writes it): held-out R^2 by prefix length beside the prefix
    /// reward's; null in files written before it, which then give no warning.
    /// </summary>
    [JsonPropertyName("heldOutByPrefixLength")] public IReadOnlyList<HeldOutAccuracy>? HeldOutByPrefixLength { get; init; }

    /// <summary>Largest <see cref="HiddenSize"/> a file may declare (no model has wider hidden states).</summary>
    public const int MaxHiddenSize = 1 << 17;

    /// <summary>Largest <see cref="HiddenUnits"/> an MLP head may declare.</summary>
    public const int MaxHiddenUnits = 1 << 14;

    /// <summary>Float32 values the weights section must hold (long: a corrupt header must not overflow it).</summary>
    public long WeightCount =>
        (Normalized ? 2L * HiddenSize : 0) + (Kind == HeadKind.Linear ? HiddenSize + 1L : (long)HiddenUnits * HiddenSize + 2L * HiddenUnits + 1);

    /// <summary>
    /// The first problem of a header read from a file, naming the field and its value; null when every field is
    /// valid. JSON cannot enforce these (null for a string, a number for an enum, sizes out of range).
    /// </summary>
    public string? Problem()
    {
        if (Format is null) return "field 'format' is null";
        if (Format != CurrentFormat) return $"head format '{Format}' is not supported (expected '{CurrentFormat}')";
        if (!Enum.IsDefined(Kind)) return $"field 'kind' is {(int)Kind}; expected \"linear\" or \"mlp\"";
        if (!Enum.IsDefined(Role)) return $"field 'role' is {(int)Role}; expected \"value\" or \"reward\"";
        if (string.IsNullOrWhiteSpace(ModelFingerprint)) return $"field 'modelFingerprint' is {(ModelFingerprint is null ? "null" : "empty")}; expected the sha256 of the model";
        if (HiddenSize is < 1 or > MaxHiddenSize) return $"field 'hiddenSize' is {HiddenSize}; expected 1..{MaxHiddenSize}";
        if (Kind == HeadKind.Mlp && HiddenUnits is < 1 or > MaxHiddenUnits) return $"field 'hiddenUnits' is {HiddenUnits}; an mlp head needs 1..{MaxHiddenUnits}";
        if (Kind == HeadKind.Linear && HiddenUnits != 0) return $"field 'hiddenUnits' is {HiddenUnits}; a linear head has 0";
        if (!Enum.IsDefined(Activation)) return $"field 'activation' is {(int)Activation}; expected \"relu\" or \"gelu\"";
        if (Feature is not ("last" or "mean")) return $"field 'feature' is {(Feature is null ? "null" : $"'{Feature}'")}; expected \"last\" or \"mean\"";
        if (WeightsSha256 is null) return "field 'weightsSha256' is null; expected 64 lowercase hex digits (or \"\" for none)";
        if (WeightsSha256.Length != 0 && (WeightsSha256.Length != 64 || !WeightsSha256.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f')))
            return $"field 'weightsSha256' is '{WeightsSha256}'; expected 64 lowercase hex digits";
        return HeldOutByPrefixLength is { } heldOut ? HeldOutAccuracy.Problem(heldOut, Role) : null;
    }
}

/// <summary>
/// A trained value or reward head on the model's hidden states, in the versioned file format
/// "TILTHEAD" + uint32 header length + UTF-8 JSON header + float32 little-endian weights (docs/head-file.md).
/// </summary>
public sealed class HeadFile
{
    private static ReadOnlySpan<byte> Magic => "TILTHEAD"u8;
    private const int MaxHeaderBytes = 1 << 20;

    /// <summary>The largest head file read: the weights must fit one .NET array.</summary>
    private static readonly long MaxFileBytes = Array.MaxLength;

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        // Enums are names only: docs/head-file.md promises that "kind": 0 is refused, not read as "linear".
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false) },
    };

    public HeadFile(HeadHeader header, float[] weights)
    {
        ArgumentNullException.ThrowIfNull(header);
        ArgumentNullException.ThrowIfNull(weights);
        // The reader's own check: a head this constructor accepts is one Read accepts (no file the reader refuses).
        if (header.Problem() is { } problem) throw new ArgumentException($"invalid head: {problem}", nameof(header));
        if (weights.Length != header.WeightCount)
            throw new ArgumentException($"a {header.Kind} head of d={header.HiddenSize}, units={header.HiddenUnits} has {header.WeightCount} weights, got {weights.Length}", nameof(weights));
        if (Array.Exists(weights, w => !float.IsFinite(w)))
            throw new ArgumentException("head weights must be finite", nameof(weights));
        Header = header with { WeightsSha256 = WeightsHash(weights) };
        Weights = weights;
    }

    public HeadHeader Header { get; }

    /// <summary>Raw weights in file order: [mean[d], std[d]] then the layer weights.</summary>
    public float[] Weights { get; }

    /// <summary>Reads and validates a head file; every problem is a <see cref="TiltException"/> naming the file.</summary>
    public static HeadFile Read(string path)
    {
        string full = Path.GetFullPath(path);
        byte[] bytes = InputFile.ReadAllBytes(full, "head file", MaxFileBytes);
        if (bytes.Length < 12 || !bytes.AsSpan(0, 8).SequenceEqual(Magic))
            throw new TiltException($"{full}: not a Tilt head file (it does not start with TILTHEAD)");
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8, 4));
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || 12 + headerLength > bytes.Length)
            throw new TiltException($"{full}: corrupt head file: header length {headerLength} does not fit the file's {bytes.Length} bytes");
        HeadHeader header;
        try
        {
            header = JsonSerializer.Deserialize<HeadHeader>(bytes.AsSpan(12, headerLength), Json)
                     ?? throw new TiltException($"{full}: the head header is null");
        }
        catch (JsonException e)
        {
            throw new TiltException($"{full}: corrupt head header{(e.Path is { } p ? $" at {p}" : "")}: {e.Message}", e);
        }
        if (header.Problem() is { } problem)
            throw new TiltException($"{full}: invalid head header: {problem}");
        long weightBytes = (long)bytes.Length - 12 - headerLength;
        long expected = 4L * header.WeightCount;
        if (weightBytes != expected)
            throw new TiltException($"{full}: truncated or corrupt head file: {weightBytes} weight bytes, expected {expected} for a {header.Kind} head of d={header.HiddenSize}");
        var weights = new float[checked((int)header.WeightCount)];
        for (int i = 0; i < weights.Length; i++)
            weights[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(12 + headerLength + 4 * i, 4));
        if (header.Normalized && FirstBadStd(weights.AsSpan(header.HiddenSize, header.HiddenSize)) is { } bad)
            throw new TiltException($"{full}: invalid head weights: std[{bad}] = {weights[header.HiddenSize + bad]}; every std must be finite and > 0");
        if (header.WeightsSha256.Length > 0 && header.WeightsSha256 != WeightsHash(weights))
            throw new TiltException($"{full}: corrupt head file: the weights do not match their sha256");
        try
        {
            return new HeadFile(header, weights);
        }
        catch (ArgumentException e)
        {
            throw new TiltException($"{full}: invalid head weights: {e.Message}", e);
        }
    }

    /// <summary>Writes the file through <see cref="AtomicFile"/> (a temporary file renamed over the target).</summary>
    /// <exception cref="TiltException">The file cannot be written; nothing is left behind.</exception>
    public void Write(string path, CancellationToken cancellationToken = default)
    {
        byte[] header = JsonSerializer.SerializeToUtf8Bytes(Header, Json);
        AtomicFile.Write(path, stream =>
        {
            stream.Write(Magic);
            Span<byte> buffer = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(buffer, header.Length);
            stream.Write(buffer);
            stream.Write(header);
            foreach (float w in Weights)
            {
                BinaryPrimitives.WriteSingleLittleEndian(buffer, w);
                stream.Write(buffer);
            }
        }, cancellationToken);
    }

    /// <summary>Refuses a model other than the one the head was trained on.</summary>
    public void CheckModel(ModelInfo model, string source)
    {
        if (model.HiddenSize != Header.HiddenSize)
            throw new TiltException($"{source}: the head reads hidden states of size {Header.HiddenSize} but the model's are {model.HiddenSize}");
        if (!string.Equals(model.Fingerprint, Header.ModelFingerprint, StringComparison.Ordinal))
            throw new TiltException($"{source}: the head was trained on model {Header.ModelFingerprint}, not on {model.Fingerprint} ({model.Path})");
    }

    /// <summary>
    /// The head as a step kernel, with the normalization folded into the first layer:
    /// W (h - mean)/std + b = (W/std) h + (b - W (mean/std)).
    /// </summary>
    public ValueHead ToKernelHead()
    {
        int d = Header.HiddenSize;
        int offset = Header.Normalized ? 2 * d : 0;
        var mean = Header.Normalized ? Weights.AsSpan(0, d) : default;
        var std = Header.Normalized ? Weights.AsSpan(d, d) : default;
        if (Header.Kind == HeadKind.Linear)
        {
            var w = Weights.AsSpan(offset, d).ToArray();
            double b = Weights[offset + d];
            if (Header.Normalized) b = Fold(w, 1, d, mean, std, [b])[0];
            return new LinearValueHead(w, (float)b);
        }
        int units = Header.HiddenUnits;
        var w1 = Weights.AsSpan(offset, units * d).ToArray();
        var b1 = Weights.AsSpan(offset + units * d, units).ToArray().Select(x => (double)x).ToArray();
        var w2 = Weights.AsSpan(offset + units * d + units, units).ToArray();
        float b2 = Weights[offset + units * d + 2 * units];
        if (Header.Normalized) b1 = Fold(w1, units, d, mean, std, b1);
        return new MlpValueHead(w1, b1.Select(x => (float)x).ToArray(), w2, b2, Header.Activation);
    }

    /// <summary>
    /// <see cref="ToKernelHead()"/> for a head read from <paramref name="source"/>: weights that are finite in the file
    /// can overflow when the standardization is folded in (a tiny std), which is then an error naming the file.
    /// </summary>
    internal ValueHead ToKernelHead(string source)
    {
        try
        {
            return ToKernelHead();
        }
        catch (ArgumentException e)
        {
            string why = e.Message is var m && m.IndexOf(" (Parameter '", StringComparison.Ordinal) is var cut and > 0 ? m[..cut] : e.Message;
            throw new TiltException($"{source}: invalid head weights: {why.TrimEnd('.')} (after folding in the standardization mean/std)", e);
        }
    }

    private static double[] Fold(float[] w, int rows, int d, ReadOnlySpan<float> mean, ReadOnlySpan<float> std, double[] bias)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < d; j++)
            {
                double s = std[j] > 0 ? std[j] : 1.0;
                double scaled = w[r * d + j] / s;
                bias[r] -= scaled * mean[j];
                w[r * d + j] = (float)scaled;
            }
        }
        return bias;
    }

    private static int? FirstBadStd(ReadOnlySpan<float> std)
    {
        for (int i = 0; i < std.Length; i++)
            if (!(std[i] > 0) || !float.IsFinite(std[i])) return i;
        return null;
    }

    private static string WeightsHash(float[] weights)
    {
        var bytes = new byte[weights.Length * 4];
        for (int i = 0; i < weights.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i, 4), weights[i]);
        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }
}
