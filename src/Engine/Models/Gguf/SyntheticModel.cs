using System.Globalization;

namespace Tilt.Engine.Models.Gguf;

/// <summary>The shape of a llama-architecture model.</summary>
/// <param name="Name">Short name used in file names and reports.</param>
/// <param name="Dim">Embedding width d.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Heads">Attention heads.</param>
/// <param name="KvHeads">Key/value heads (grouped-query attention when fewer than Heads).</param>
/// <param name="FeedForward">Hidden width of the SwiGLU feed-forward layer.</param>
/// <param name="ContextLength">Trained context length written to the metadata.</param>
public sealed record ModelShape(string Name, int Dim, int Layers, int Heads, int KvHeads, int FeedForward, int ContextLength = 2048)
{
    /// <summary>llama2.c's stories15M shape (~15M parameters with a 32000-token vocabulary).</summary>
    public static ModelShape Small15M { get; } = new("15m", 288, 6, 6, 6, 768);

    /// <summary>llama2.c's stories110M shape (~110M parameters).</summary>
    public static ModelShape Base110M { get; } = new("110m", 768, 12, 12, 12, 2048);

    /// <summary>TinyLlama's shape (~1.1B parameters, grouped-query attention).</summary>
    public static ModelShape Large1B { get; } = new("1b", 2048, 22, 32, 4, 5632);

    public static IReadOnlyList<ModelShape> Presets { get; } = [Small15M, Base110M, Large1B];

    /// <summary>The most layers llama.cpp loads (LLAMA_MAX_LAYERS), checked by the loader too.</summary>
    public const int MaxLayers = GgufHyperParameters.MaxLayers;

    /// <summary>The largest vocabulary the loader takes.</summary>
    public const int MaxVocabulary = GgufHyperParameters.MaxVocabulary;

    public int HeadDim => Dim / Heads;

    /// <summary>Parameters for a given vocabulary size (embedding and output matrices untied).</summary>
    public long Parameters(int vocab)
    {
        long kvDim = (long)KvHeads * HeadDim;
        long perLayer = 2L * Dim + (long)Dim * Dim * 2 + 2 * Dim * kvDim + 3L * Dim * FeedForward;
        return 2L * vocab * Dim + Dim + Layers * perLayer;
    }

    /// <summary>
    /// Bytes of the tensor data of a file of this shape (headers and padding excluded), in double so that absurd
    /// shapes give a large number rather than an overflow.
    /// </summary>
    public double TensorBytes(int vocab, GgufTensorType type)
    {
        double kvDim = (double)KvHeads * HeadDim, d = Dim;
        double matrices = 2.0 * vocab * d + Layers * (2.0 * d * d + 2.0 * d * kvDim + 3.0 * d * FeedForward);
        double norms = d * (2.0 * Layers + 1);
        double perValue = type switch { GgufTensorType.F32 => 4, GgufTensorType.F16 => 2, _ => 34.0 / 32 };
        return matrices * perValue + norms * 4;
    }

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the field for a shape llama.cpp cannot run: the loader's own
    /// check (<see cref="GgufHyperParameters"/>) and the limits of this writer.
    /// </summary>
    /// <param name="type">The tensor type.</param>
    /// <param name="vocabulary">The vocabulary size, when known.</param>
    public void Validate(GgufTensorType type, int? vocabulary = null)
    {
        if (Dim < 8) throw new ArgumentException($"dim must be at least 8, got {Dim}", nameof(Dim));
        if (Layers < 1) throw new ArgumentException($"layers must be at least 1, got {Layers}", nameof(Layers));
        if (Heads < 1 || Dim % Heads != 0) throw new ArgumentException($"heads ({Heads}) must divide dim ({Dim})", nameof(Heads));
        if (KvHeads < 1 || Heads % KvHeads != 0) throw new ArgumentException($"kv heads ({KvHeads}) must divide heads ({Heads})", nameof(KvHeads));
        if (HeadDim % 2 != 0) throw new ArgumentException($"the head dimension dim/heads = {HeadDim} must be even (rotary embeddings rotate pairs)", nameof(Heads));
        if (FeedForward < 1) throw new ArgumentException($"feed-forward width must be at least 1, got {FeedForward}", nameof(FeedForward));
        if (ContextLength < 16) throw new ArgumentException($"context length must be at least 16, got {ContextLength}", nameof(ContextLength));
        if (type == GgufTensorType.Q8_0 && (Dim % 32 != 0 || FeedForward % 32 != 0))
            throw new ArgumentException($"Q8_0 needs dim ({Dim}) and feed-forward width ({FeedForward}) divisible by 32", nameof(type));
        if (GgufHyperParameters.FromShape(this, vocabulary).Problem() is { } problem)
            throw new ArgumentException($"the model would not load: {problem}", nameof(Layers));
    }
}

/// <summary>A tokenizer vocabulary in llama.cpp's SentencePiece ("llama") form.</summary>
public sealed record SentencePieceVocabulary(string[] Tokens, float[] Scores, int[] TokenTypes, int Bos, int Eos, int Unknown)
{
    private const int Normal = 1, UnknownType = 2, Control = 3, Byte = 6;

    /// <summary>
    /// A synthetic vocabulary of the requested size: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the 256 byte tokens, then generated
    /// word pieces, so that vocabulary-sized costs (logits, sampling) are realistic.
    /// </summary>
    public static SentencePieceVocabulary Synthesize(int size)
    {
        if (size < 259 + 26 || size > GgufHyperParameters.MaxVocabulary)
            throw new ArgumentException($"a synthetic vocabulary needs {259 + 26}..{GgufHyperParameters.MaxVocabulary} tokens (3 special, 256 bytes, letters; at most what the loader takes), got {size}", nameof(size));
        var tokens = new string[size];
        var scores = new float[size];
        var types = new int[size];
        (tokens[0], types[0]) = ("<unk>", UnknownType);
        (tokens[1], types[1]) = ("<s>", Control);
        (tokens[2], types[2]) = ("</s>", Control);
        for (int b = 0; b < 256; b++) (tokens[3 + b], types[3 + b]) = ($"<0x{b:X2}>", Byte);
        // Pieces: single letters first (so any ASCII word tokenizes), then "▁"-prefixed and bare letter strings
        // in length order, deterministic and unique.
        int next = 259;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var piece in Pieces())
        {
            if (next == size) break;
            if (!seen.Add(piece)) continue;
            tokens[next] = piece;
            types[next] = Normal;
            scores[next] = -(next - 259);
            next++;
        }
        return new SentencePieceVocabulary(tokens, scores, types, Bos: 1, Eos: 2, Unknown: 0);

        static IEnumerable<string> Pieces()
        {
            for (char c = 'a'; c <= 'z'; c++) yield return c.ToString();
            for (char c = 'a'; c <= 'z'; c++) yield return "\u2581" + c;
            for (int length = 2; ; length++)
            {
                var word = new char[length];
                long count = (long)Math.Pow(26, length);
                for (long i = 0; i < count; i++)
                {
                    long x = i;
                    for (int j = length - 1; j >= 0; j--, x /= 26) word[j] = (char)('a' + x % 26);
                    yield return "\u2581" + new string(word);
                    yield return new string(word);
                }
            }
        }
    }

    /// <summary>The vocabulary of an existing llama-tokenizer GGUF file.</summary>
    public static SentencePieceVocabulary CopyFrom(string path)
    {
        var header = GgufHeader.Read(path);
        if (header.GetString("tokenizer.ggml.model") != "llama")
            throw new ModelLoadException(path, $"only SentencePiece ('llama') vocabularies can be copied, this one is '{header.GetString("tokenizer.ggml.model")}'");
        if (header.Metadata.GetValueOrDefault("tokenizer.ggml.tokens") is not object[] tokens)
            throw new ModelLoadException(path, "the file has no tokenizer.ggml.tokens");
        var scores = header.Metadata.GetValueOrDefault("tokenizer.ggml.scores") as object[];
        var types = header.Metadata.GetValueOrDefault("tokenizer.ggml.token_type") as object[];
        return new SentencePieceVocabulary(
            tokens.Cast<string>().ToArray(),
            scores?.Select(Convert.ToSingle).ToArray() ?? new float[tokens.Length],
            types?.Select(Convert.ToInt32).ToArray() ?? Enumerable.Repeat(Normal, tokens.Length).ToArray(),
            (int)(header.GetInteger("tokenizer.ggml.bos_token_id") ?? 1),
            (int)(header.GetInteger("tokenizer.ggml.eos_token_id") ?? 2),
            (int)(header.GetInteger("tokenizer.ggml.unknown_token_id") ?? 0));
    }
}

/// <summary>
/// Random-weight llama models for benchmarks: real shapes, real vocabulary sizes, weights ~ N(0, 0.02) from a
/// fixed seed (norm weights 1). They produce noise, but every decode costs exactly what a trained model of
/// the same shape and type costs.
/// </summary>
public static class SyntheticModel
{
    /// <summary>Writes a GGUF file for the shape; returns its size in bytes.</summary>
    /// <param name="chatTemplate">Written as tokenizer.chat_template when given (a Jinja template or a name llama.cpp knows).</param>
    /// <exception cref="TiltException">The file would not fit the free space of its disk, or cannot be written.</exception>
    public static long Write(string path, ModelShape shape, SentencePieceVocabulary vocabulary, GgufTensorType type, ulong seed = 1, IProgress<double>? progress = null,
        string? chatTemplate = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(vocabulary);
        int vocab = vocabulary.Tokens.Length;
        shape.Validate(type, vocab);
        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", $"tilt-synthetic-{shape.Name}");
        w.Add("general.file_type", (uint)(type switch { GgufTensorType.F32 => 0, GgufTensorType.F16 => 1, _ => 7 }));
        w.Add("llama.context_length", (uint)shape.ContextLength);
        w.Add("llama.embedding_length", (uint)shape.Dim);
        w.Add("llama.block_count", (uint)shape.Layers);
        w.Add("llama.feed_forward_length", (uint)shape.FeedForward);
        w.Add("llama.attention.head_count", (uint)shape.Heads);
        w.Add("llama.attention.head_count_kv", (uint)shape.KvHeads);
        w.Add("llama.rope.dimension_count", (uint)shape.HeadDim);
        w.Add("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        w.Add("llama.vocab_size", (uint)vocab);
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", vocabulary.Tokens);
        w.Add("tokenizer.ggml.scores", vocabulary.Scores);
        w.Add("tokenizer.ggml.token_type", vocabulary.TokenTypes);
        w.Add("tokenizer.ggml.bos_token_id", (uint)vocabulary.Bos);
        w.Add("tokenizer.ggml.eos_token_id", (uint)vocabulary.Eos);
        w.Add("tokenizer.ggml.unknown_token_id", (uint)vocabulary.Unknown);
        w.Add("tokenizer.ggml.add_bos_token", true);
        if (chatTemplate is not null) w.Add("tokenizer.chat_template", chatTemplate);

        int d = shape.Dim, kv = shape.KvHeads * shape.HeadDim, ff = shape.FeedForward;
        int index = 0;
        void Matrix(string name, int ne0, int ne1, GgufTensorType t)
        {
            var rng = new NormalGenerator(seed, (ulong)index++);
            w.AddTensor(name, [ne0, ne1], t, (span, _) => rng.Fill(span, 0.02f));
        }
        void Norm(string name)
        {
            index++;
            w.AddTensor(name, [d], GgufTensorType.F32, (span, _) => span.Fill(1f));
        }

        Matrix("token_embd.weight", d, vocab, type);
        for (int l = 0; l < shape.Layers; l++)
        {
            Norm($"blk.{l}.attn_norm.weight");
            Matrix($"blk.{l}.attn_q.weight", d, d, type);
            Matrix($"blk.{l}.attn_k.weight", d, kv, type);
            Matrix($"blk.{l}.attn_v.weight", d, kv, type);
            Matrix($"blk.{l}.attn_output.weight", d, d, type);
            Norm($"blk.{l}.ffn_norm.weight");
            Matrix($"blk.{l}.ffn_gate.weight", d, ff, type);
            Matrix($"blk.{l}.ffn_up.weight", d, ff, type);
            Matrix($"blk.{l}.ffn_down.weight", ff, d, type);
        }
        Norm("output_norm.weight");
        Matrix("output.weight", d, vocab, type);

        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        CheckDiskSpace(full, dir, shape.TensorBytes(vocab, type) + MetadataAllowance(vocabulary));
        w.Write(full, progress, cancellationToken);
        return new FileInfo(path).Length;
    }

    /// <summary>Refuses, before writing a byte, a file larger than the free space of the disk it goes to.</summary>
    private static void CheckDiskSpace(string path, string folder, double bytes)
    {
        long free;
        try
        {
            free = new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return; // No drive information (some container file systems): the write itself still fails cleanly.
        }
        if (bytes > free)
            throw new TiltException(string.Create(CultureInfo.InvariantCulture,
                $"{path}: the model needs {bytes / (1 << 30):F1} GiB but {folder} has {free / (double)(1 << 30):F1} GiB free; choose a smaller shape or another --out"));
    }

    /// <summary>The vocabulary's strings and arrays, an upper bound on the metadata's size.</summary>
    private static double MetadataAllowance(SentencePieceVocabulary vocabulary) =>
        (1 << 16) + vocabulary.Tokens.Sum(t => 8.0 + 4 * t.Length) + 8.0 * vocabulary.Tokens.Length;

    /// <summary>Where generated models go unless told otherwise: $TILT_CACHE/models, else ~/.cache/tilt/models.</summary>
    public static string CacheDirectory =>
        Path.Combine(Environment.GetEnvironmentVariable("TILT_CACHE") is { Length: > 0 } cache
            ? cache
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "tilt"), "models");

    /// <summary>N(0, sigma) values from xoshiro256** seeded by (seed, stream), via Box-Muller.</summary>
    private sealed class NormalGenerator
    {
        private ulong _s0, _s1, _s2, _s3;

        public NormalGenerator(ulong seed, ulong stream)
        {
            ulong x = seed * 0x9E3779B97F4A7C15UL ^ (stream + 1) * 0xD1B54A32D192ED03UL;
            _s0 = SplitMix(ref x);
            _s1 = SplitMix(ref x);
            _s2 = SplitMix(ref x);
            _s3 = SplitMix(ref x);
        }

        public void Fill(Span<float> values, float sigma)
        {
            for (int i = 0; i < values.Length; i += 2)
            {
                double u1 = ((Next() >> 11) + 1) * (1.0 / 9007199254740993.0); // (0, 1]
                double u2 = (Next() >> 11) * (1.0 / 9007199254740992.0);
                double radius = Math.Sqrt(-2 * Math.Log(u1)) * sigma;
                values[i] = (float)(radius * Math.Cos(2 * Math.PI * u2));
                if (i + 1 < values.Length) values[i + 1] = (float)(radius * Math.Sin(2 * Math.PI * u2));
            }
        }

        private ulong Next()
        {
            ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
            ulong t = _s1 << 17;
            _s2 ^= _s0;
            _s3 ^= _s1;
            _s1 ^= _s2;
            _s0 ^= _s3;
            _s2 ^= t;
            _s3 = ulong.RotateLeft(_s3, 45);
            return result;
        }

        private static ulong SplitMix(ref ulong x)
        {
            ulong z = x += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
