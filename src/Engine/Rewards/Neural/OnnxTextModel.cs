using System.Collections.Concurrent;
using System.Globalization;
using Tilt.Engine.IO;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>Where ONNX Runtime runs a neural reward's graph.</summary>
public enum OnnxDevice
{
    /// <summary>ONNX Runtime's CPU execution provider (the default).</summary>
    Cpu,

    /// <summary>The CUDA execution provider, GPU 0; needs an ONNX Runtime build with CUDA (Microsoft.ML.OnnxRuntime.Gpu).</summary>
    Cuda,
}

/// <summary>ONNX Runtime's graph optimization level for a neural reward's session.</summary>
public enum OnnxGraphOptimization
{
    /// <summary>Every optimization, layout changes included (ORT_ENABLE_ALL, ONNX Runtime's default). Spec: <c>optimization=all</c>.</summary>
    All,

    /// <summary>Basic plus extended node fusions (ORT_ENABLE_EXTENDED). Spec: <c>optimization=extended</c>.</summary>
    Extended,

    /// <summary>Constant folding and redundant-node removal (ORT_ENABLE_BASIC). Spec: <c>optimization=basic</c>.</summary>
    Basic,

    /// <summary>The graph as written (ORT_DISABLE_ALL). Spec: <c>optimization=none</c>.</summary>
    None,
}

/// <summary>How a session is made: device, intra-op threads (null: ONNX Runtime's default) and graph optimization.</summary>
public readonly record struct OnnxSessionSettings(OnnxDevice Device, int? IntraOpThreads = null, OnnxGraphOptimization Optimization = OnnxGraphOptimization.All);

/// <summary>Reads a graph output of one Run: the float data (row-major) and its shape.</summary>
internal delegate void OutputReader(ReadOnlySpan<float> data, ReadOnlySpan<long> shape);

/// <summary>One tokenized text of a batch: ids and, for a pair, segment ids (null: all 0).</summary>
internal readonly record struct EncodedText(int[] Ids, int[]? Segments);

/// <summary>
/// A BERT-style ONNX text graph (inputs <c>input_ids</c>, <c>attention_mask</c> and optionally <c>token_type_ids</c>,
/// int64 [batch, sequence]) in one <see cref="InferenceSession"/> per file and device, loaded once per process and
/// shared by every reward that names the file (<see cref="Load"/>). A batch runs as ONE <see cref="Run"/>: rows
/// padded to the longest, the attention mask 0 over padding. Thread-safe: ONNX Runtime allows concurrent Run calls
/// on one session.
/// </summary>
internal sealed class OnnxTextModel
{
    public const string InputIds = "input_ids";
    public const string AttentionMask = "attention_mask";
    public const string TokenTypeIds = "token_type_ids";

    private static readonly ConcurrentDictionary<(string Path, OnnxSessionSettings Settings), Lazy<OnnxTextModel>> Cache = new();

    private readonly InferenceSession _session;
    private readonly string[] _inputNames;
    private readonly ConcurrentDictionary<(string Tokenizer, int MaxLength), bool> _accepted = new();

    private OnnxTextModel(string path, OnnxSessionSettings settings, InferenceSession session)
    {
        Path = path;
        Settings = settings;
        _session = session;
        var inputs = session.InputMetadata;
        HasTokenTypeIds = inputs.ContainsKey(TokenTypeIds);
        _inputNames = HasTokenTypeIds ? [InputIds, AttentionMask, TokenTypeIds] : [InputIds, AttentionMask];
    }

    /// <summary>The .onnx file (full path).</summary>
    public string Path { get; }

    public OnnxDevice Device => Settings.Device;

    /// <summary>How the session was made (one session per file and settings).</summary>
    public OnnxSessionSettings Settings { get; }

    /// <summary>True when the graph takes segment ids (BERT does; DistilBERT and RoBERTa exports do not).</summary>
    public bool HasTokenTypeIds { get; }

    /// <summary>
    /// The model of <paramref name="path"/> with <paramref name="settings"/>, loaded on first use and kept for the life of
    /// the process (keyed by full path and settings). A file that fails to load is not cached.
    /// </summary>
    /// <exception cref="TiltException">Missing file, not an ONNX graph, unexpected inputs, or an unavailable device.</exception>
    public static OnnxTextModel Load(string path, OnnxSessionSettings settings)
    {
        var key = (System.IO.Path.GetFullPath(path), settings);
        var lazy = Cache.GetOrAdd(key, k => new Lazy<OnnxTextModel>(() => Open(k.Path, k.Settings), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            Cache.TryRemove(new KeyValuePair<(string, OnnxSessionSettings), Lazy<OnnxTextModel>>(key, lazy));
            throw;
        }
    }

    /// <summary>
    /// The float output to read: the first of <paramref name="preferred"/> the graph has, else its only output when
    /// that has rank <paramref name="rank"/>; otherwise an error listing the graph's outputs.
    /// </summary>
    public string FindOutput(string purpose, int rank, params string[] preferred)
    {
        var outputs = _session.OutputMetadata;
        foreach (string name in preferred)
        {
            if (outputs.TryGetValue(name, out var meta))
            {
                return CheckOutput(name, meta, rank, purpose);
            }
        }

        if (outputs.Count == 1)
        {
            var only = outputs.Single();
            return CheckOutput(only.Key, only.Value, rank, purpose);
        }

        throw new TiltException(
            $"{Path}: no output for {purpose}: expected one named {string.Join(" or ", preferred)}, rank {rank}, float; the graph's outputs are {Describe(outputs)}");
    }

    /// <summary>The static size of dimension <paramref name="axis"/> of an output, or null when symbolic.</summary>
    public long? OutputDimension(string output, int axis)
    {
        int size = _session.OutputMetadata[output].Dimensions[axis];
        return size > 0 ? size : null;
    }

    /// <summary>
    /// Checks once per tokenizer and length that the graph accepts the tokenizer's largest id at the last of
    /// <paramref name="maxLength"/> positions: a tokenizer of another model, or a length beyond the model's
    /// position table, fails here with the files named instead of in the middle of a decode.
    /// </summary>
    /// <exception cref="TiltException">The probe run failed.</exception>
    public void EnsureAccepts(TextTokenizer tokenizer, int maxLength)
    {
        if (_accepted.ContainsKey((tokenizer.Path, maxLength)))
        {
            return;
        }

        int[] probe = tokenizer.Probe(maxLength); // e.g. [CLS] (V-1) ... (V-1) [SEP]
        try
        {
            Run([new EncodedText(probe, null)], tokenizer.PaddingId, _session.OutputNames[0], static (_, _) => { });
        }
        catch (TiltException e)
        {
            throw new TiltException(
                $"{tokenizer.Path} ({tokenizer.VocabularySize} tokens) with max-length {maxLength} does not fit {Path}: " +
                $"a run with token id {tokenizer.VocabularySize - 1} up to position {maxLength - 1} failed (is the tokenizer another model's, " +
                $"or max-length beyond the model's positions?): {e.InnerException?.Message ?? e.Message}", e);
        }

        _accepted.TryAdd((tokenizer.Path, maxLength), true);
    }

    /// <summary>
    /// Runs the graph once over all <paramref name="rows"/> (padded to the longest with <paramref name="paddingId"/>,
    /// attention mask 1 over each row's tokens and 0 over padding) and hands <paramref name="output"/> to
    /// <paramref name="read"/>, whose span is valid only during the call.
    /// </summary>
    public void Run(IReadOnlyList<EncodedText> rows, int paddingId, string output, OutputReader read)
    {
        int batch = rows.Count;
        int width = 0;
        for (int r = 0; r < batch; r++)
        {
            width = Math.Max(width, rows[r].Ids.Length);
        }

        var ids = new long[batch * width];          // [batch, width]
        var mask = new long[batch * width];         // [batch, width]
        var segments = HasTokenTypeIds ? new long[batch * width] : null;
        ids.AsSpan().Fill(paddingId);
        for (int r = 0; r < batch; r++)
        {
            var row = rows[r];
            int offset = r * width;
            for (int j = 0; j < row.Ids.Length; j++)
            {
                ids[offset + j] = row.Ids[j];
                mask[offset + j] = 1;
                if (segments is not null && row.Segments is not null)
                {
                    segments[offset + j] = row.Segments[j];
                }
            }
        }

        long[] shape = [batch, width];
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, shape);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, shape);
        using var segmentsValue = segments is null ? null : OrtValue.CreateTensorValueFromMemory(segments, shape);
        OrtValue[] values = segmentsValue is null ? [idsValue, maskValue] : [idsValue, maskValue, segmentsValue];
        IDisposableReadOnlyCollection<OrtValue> results;
        try
        {
            using var options = new RunOptions();
            results = _session.Run(options, _inputNames, values, [output]);
        }
        catch (OnnxRuntimeException e)
        {
            throw new TiltException($"{Path}: ONNX Runtime failed on a batch of {batch} x {width} tokens: {e.Message}", e);
        }

        using (results)
        {
            var value = results[0];
            read(value.GetTensorDataAsSpan<float>(), value.GetTensorTypeAndShape().Shape);
        }
    }

    /// <summary>The largest ONNX file opened: 4 GiB (larger models keep their weights in external data files).</summary>
    private const long MaxOnnxBytes = 4L << 30;

    private static OnnxTextModel Open(string path, OnnxSessionSettings settings)
    {
        var device = settings.Device;
        // ONNX Runtime reads the file itself; the check refuses a folder, FIFO or device first (a FIFO would hang it).
        InputFile.Check(path, "ONNX model file", MaxOnnxBytes);

        using var options = new SessionOptions
        {
            GraphOptimizationLevel = settings.Optimization switch
            {
                OnnxGraphOptimization.None => GraphOptimizationLevel.ORT_DISABLE_ALL,
                OnnxGraphOptimization.Basic => GraphOptimizationLevel.ORT_ENABLE_BASIC,
                OnnxGraphOptimization.Extended => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
            },
        };
        if (settings.IntraOpThreads is int threads) options.IntraOpNumThreads = threads;
        if (device == OnnxDevice.Cuda)
        {
            string[] available = OrtEnv.Instance().GetAvailableProviders();
            if (!available.Contains("CUDAExecutionProvider"))
            {
                throw new TiltException(
                    $"{path}: device=cuda, but this ONNX Runtime build has no CUDA execution provider (it has {string.Join(", ", available)}); " +
                    "use the Microsoft.ML.OnnxRuntime.Gpu package on a machine with a CUDA driver, or leave device at cpu");
            }

            try
            {
                options.AppendExecutionProvider_CUDA(0);
            }
            catch (OnnxRuntimeException e)
            {
                throw new TiltException($"{path}: device=cuda: the CUDA execution provider could not start: {e.Message}", e);
            }
        }

        InferenceSession session;
        try
        {
            session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new TiltException($"{path}: not an ONNX model ONNX Runtime can load: {e.Message}", e);
        }

        try
        {
            CheckInputs(path, session.InputMetadata);
            return new OnnxTextModel(path, settings, session);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static void CheckInputs(string path, IReadOnlyDictionary<string, NodeMetadata> inputs)
    {
        string expected = $"a text model takes {InputIds} and {AttentionMask} (and optionally {TokenTypeIds}), int64 [batch, sequence]";
        foreach (var (name, meta) in inputs)
        {
            bool known = name is InputIds or AttentionMask or TokenTypeIds;
            if (!known || meta.ElementDataType != TensorElementType.Int64 || meta.Dimensions.Length != 2)
            {
                throw new TiltException($"{path}: unexpected graph input {name} {Shape(meta)}; {expected}; the graph's inputs are {Describe(inputs)}");
            }
        }

        foreach (string name in new[] { InputIds, AttentionMask })
        {
            if (!inputs.ContainsKey(name))
            {
                throw new TiltException($"{path}: the graph has no input {name}; {expected}; the graph's inputs are {Describe(inputs)}");
            }
        }
    }

    private string CheckOutput(string name, NodeMetadata meta, int rank, string purpose)
    {
        if (meta.ElementDataType != TensorElementType.Float || meta.Dimensions.Length != rank)
        {
            throw new TiltException(
                $"{Path}: output {name} {Shape(meta)} cannot be used for {purpose} (expected float with rank {rank}); the graph's outputs are {Describe(_session.OutputMetadata)}");
        }

        return name;
    }

    private static string Describe(IReadOnlyDictionary<string, NodeMetadata> nodes) =>
        nodes.Count == 0 ? "(none)" : string.Join(", ", nodes.Select(n => $"{n.Key} {Shape(n.Value)}"));

    /// <summary>"float [batch, sequence, 384]": element type and dimensions, symbolic ones by name.</summary>
    private static string Shape(NodeMetadata meta)
    {
        if (!meta.IsTensor)
        {
            return $"({meta.OnnxValueType})";
        }

        var dims = meta.Dimensions.Select((d, i) =>
            d > 0 ? d.ToString(CultureInfo.InvariantCulture)
            : i < meta.SymbolicDimensions.Length && meta.SymbolicDimensions[i] is { Length: > 0 } s ? s : "?");
        return $"{meta.ElementDataType.ToString().ToLowerInvariant()} [{string.Join(", ", dims)}]";
    }
}
