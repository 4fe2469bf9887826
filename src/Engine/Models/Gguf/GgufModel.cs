using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Exceptions;
using LLama.Native;
using Tilt.Engine.Text;

namespace Tilt.Engine.Models.Gguf;

/// <summary>Options for loading a GGUF model.</summary>
public sealed record GgufLoadOptions
{
    /// <summary>
    /// Path of a native llama library to use instead of the bundled CPU build (for example the user's
    /// CUDA build of the same llama.cpp commit). Defaults to null (bundled CPU backend).
    /// </summary>
    public string? NativeLibraryPath { get; init; }

    /// <summary>Layers to offload to a GPU when the native library has one. Defaults to all (999).</summary>
    public int GpuLayers
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(GpuLayers), value, "GPU layers must be >= 0");
    } = 999;
}

/// <summary>A GGUF model hosted by llama.cpp through LLamaSharp.</summary>
public sealed class GgufModel : ILanguageModel
{
    private readonly LLamaWeights _weights;
    private readonly byte[][] _pieces; // token id -> raw bytes of its piece (special tokens: empty)

    private GgufModel(LLamaWeights weights, ModelInfo info)
    {
        _weights = weights;
        Info = info;
        _pieces = new byte[info.VocabularySize][];
        Span<byte> buffer = stackalloc byte[256];
        for (int t = 0; t < _pieces.Length; t++)
        {
            uint n = weights.NativeHandle.TokenToSpan((LLamaToken)t, buffer, 0, false);
            _pieces[t] = n <= buffer.Length ? buffer[..(int)n].ToArray() : LongPiece(weights, t, (int)n);
        }
    }

    public ModelInfo Info { get; }

    /// <summary>Loads a GGUF file; every problem comes back as a <see cref="ModelLoadException"/> naming the file.</summary>
    public static GgufModel Load(string path, GgufLoadOptions? options = null)
    {
        options ??= new GgufLoadOptions();
        string fullPath = System.IO.Path.GetFullPath(path);
        var header = GgufHeader.Read(fullPath);
        // llama.cpp aborts the process (GGML_ASSERT) on some out-of-range values instead of failing the load: refuse them first.
        if (GgufHyperParameters.FromHeader(header).Problem() is { } problem)
            throw new ModelLoadException(fullPath, $"llama.cpp cannot load this model: {problem}");
        string fingerprint = Sha256Fingerprint(fullPath);

        LlamaNative.Configure(options.NativeLibraryPath);
        var parameters = new ModelParams(fullPath) { GpuLayerCount = options.GpuLayers };
        LLamaWeights weights;
        LlamaNative.BeginCapture();
        try
        {
            NativeLogHook.Install(options.NativeLibraryPath);
            weights = LLamaWeights.LoadFromFile(parameters);
        }
        catch (LoadWeightsFailedException e)
        {
            string why = LlamaNative.CapturedErrors();
            throw new ModelLoadException(fullPath, $"llama.cpp could not load the model{(why.Length > 0 ? ": " + why : "")}", e);
        }
        catch (Exception e) when (e is RuntimeError or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or TypeInitializationException)
        {
            throw new ModelLoadException(fullPath, $"the native llama library failed: {(e.InnerException ?? e).Message}", e);
        }

        try
        {
            var vocab = weights.Vocab;
            int? eos = vocab.EOS is { } e ? (int)e : vocab.EOT is { } eot ? (int)eot : null;
            if (eos is null)
                throw new ModelLoadException(fullPath, "the model's vocabulary has no end-of-sequence token");
            if (weights.ContextSize < 1)
                throw new ModelLoadException(fullPath, $"the model's trained context length ({header.GetString("general.architecture") ?? "llama"}.context_length) is {weights.ContextSize}; it must be at least 1");
            var stops = new List<int> { eos.Value };
            if (vocab.EOT is { } eotToken && !stops.Contains((int)eotToken)) stops.Add((int)eotToken);
            if (vocab.BOS is { } bosToken && !stops.Contains((int)bosToken)) stops.Add((int)bosToken);
            string arch = header.GetString("general.architecture") ?? "unknown";
            var info = new ModelInfo
            {
                Kind = ModelKind.Gguf,
                Path = fullPath,
                VocabularySize = vocab.Count,
                BosToken = vocab.ShouldAddBOS && vocab.BOS is { } b ? (int)b : null,
                EosToken = eos.Value,
                StopTokens = stops,
                HiddenSize = weights.EmbeddingSize,
                TrainedContextSize = weights.ContextSize,
                Fingerprint = fingerprint,
                ChatTemplate = header.GetString("tokenizer.chat_template") is { Length: > 0 } template ? template : null,
                Description = $"{arch}, {weights.NativeHandle.LayerCount} layers, d={weights.EmbeddingSize}, " +
                              $"vocab {vocab.Count}, {weights.ParameterCount:N0} parameters, {header.Tensors.Count} tensors",
            };
            return new GgufModel(weights, info);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>"sha256:&lt;hex&gt;" of a file's bytes.</summary>
    public static string Sha256Fingerprint(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public int[] Tokenize(string text, bool addBos = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = _weights.Tokenize(text, addBos && Info.BosToken is not null, special: false, Encoding.UTF8);
        return MemoryMarshal.Cast<LLamaToken, int>(tokens.AsSpan()).ToArray();
    }

    /// <summary>
    /// Tokenizes text in which special tokens are written out, such as a chat template's output ("&lt;|im_start|&gt;"
    /// becomes that token, not its characters), with BOS first when the model wants one and the text does not already
    /// begin with it. For reward models, which read a whole formatted conversation.
    /// </summary>
    internal int[] TokenizeWithSpecialTokens(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = _weights.Tokenize(text, Info.BosToken is not null, special: true, Encoding.UTF8);
        var ids = MemoryMarshal.Cast<LLamaToken, int>(tokens.AsSpan()).ToArray();
        // A template that writes BOS itself ("<s>", "<|begin_of_text|>") would otherwise give it twice.
        return ids.Length >= 2 && Info.BosToken is { } bos && ids[0] == bos && ids[1] == bos ? ids[1..] : ids;
    }

    public ITextDecoder CreateTextDecoder() => new Utf8TokenDecoder(TokenBytes);

    public string Detokenize(ReadOnlySpan<int> tokens)
    {
        var bytes = new List<byte>(tokens.Length * 4);
        foreach (int t in tokens) bytes.AddRange(TokenBytes(t));
        return new UTF8Encoding(false, false).GetString(bytes.ToArray());
    }

    public IDecodingSession CreateSession(SessionOptions options) => new GgufDecodingSession(_weights, Info, options);

    public void Dispose() => _weights.Dispose();

    private byte[] TokenBytes(int token) =>
        (uint)token < (uint)_pieces.Length
            ? _pieces[token]
            : throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary (0..{_pieces.Length - 1})");

    private static byte[] LongPiece(LLamaWeights weights, int token, int length)
    {
        var buffer = new byte[length];
        weights.NativeHandle.TokenToSpan((LLamaToken)token, buffer, 0, false);
        return buffer;
    }
}
