using System.Globalization;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// The hyper-parameters of a GGUF model that llama.cpp (commit 815a2a5) asserts on while loading or building its graph:
/// a value out of range there aborts the whole process (GGML_ASSERT, exit 134) instead of failing the load. The loader
/// checks a file's header with <see cref="Problem"/> before native code sees it, and <c>tilt make-model</c> checks a
/// shape with the same method before writing, so it never writes a file the loader refuses.
/// </summary>
internal sealed record GgufHyperParameters
{
    /// <summary>LLAMA_MAX_LAYERS in llama.cpp's llama-hparams.h.</summary>
    public const int MaxLayers = 512;

    /// <summary>LLAMA_MAX_EXPERTS in llama.cpp's llama-hparams.h.</summary>
    public const int MaxExperts = 256;

    /// <summary>The largest vocabulary accepted: four times the largest real one (Gemma's 262,144), far below int overflow.</summary>
    public const int MaxVocabulary = 1 << 20;

    public required string Architecture { get; init; }
    public long? Layers { get; init; }
    public long? Embedding { get; init; }

    /// <summary>Attention heads: one value, or one per layer.</summary>
    public IReadOnlyList<long>? Heads { get; init; }
    public IReadOnlyList<long>? KvHeads { get; init; }
    public long? RopeDimensions { get; init; }
    public long? ContextLength { get; init; }
    public long? Experts { get; init; }
    public long? ExpertsUsed { get; init; }
    public long? Vocabulary { get; init; }

    /// <summary>{arch}.rope.scaling.type: llama.cpp asserts it names a scaling it knows.</summary>
    public string? RopeScaling { get; init; }

    /// <summary>The rope scalings llama.cpp knows (llama_rope_scaling_type_from_string).</summary>
    private static readonly string[] KnownRopeScalings = ["none", "linear", "yarn", "longrope"];

    /// <summary>token_embd.weight's dimensions [n_embd, n_vocab], when the file has that tensor.</summary>
    public IReadOnlyList<long>? TokenEmbedding { get; init; }

    /// <summary>The hyper-parameters a header declares (keys absent from it stay null: llama.cpp reports those itself).</summary>
    public static GgufHyperParameters FromHeader(GgufHeader header)
    {
        ArgumentNullException.ThrowIfNull(header);
        string arch = header.GetString("general.architecture") ?? "llama";
        long? vocabulary = header.Metadata.TryGetValue("tokenizer.ggml.tokens", out var t) && t is object[] tokens ? tokens.Length : null;
        return new GgufHyperParameters
        {
            Architecture = arch,
            Layers = header.GetInteger($"{arch}.block_count"),
            Embedding = header.GetInteger($"{arch}.embedding_length"),
            Heads = IntegerOrArray(header, $"{arch}.attention.head_count"),
            KvHeads = IntegerOrArray(header, $"{arch}.attention.head_count_kv"),
            RopeDimensions = header.GetInteger($"{arch}.rope.dimension_count"),
            ContextLength = header.GetInteger($"{arch}.context_length"),
            Experts = header.GetInteger($"{arch}.expert_count"),
            ExpertsUsed = header.GetInteger($"{arch}.expert_used_count"),
            Vocabulary = vocabulary,
            RopeScaling = header.Metadata.TryGetValue($"{arch}.rope.scaling.type", out var scaling) ? scaling as string ?? "(not a string)" : null,
            TokenEmbedding = header.Tensors.FirstOrDefault(x => x.Name == "token_embd.weight")?.Dimensions,
        };
    }

    /// <summary>The hyper-parameters of a llama model of <paramref name="shape"/> with <paramref name="vocabulary"/> tokens.</summary>
    public static GgufHyperParameters FromShape(ModelShape shape, int? vocabulary)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return new GgufHyperParameters
        {
            Architecture = "llama",
            Layers = shape.Layers,
            Embedding = shape.Dim,
            Heads = [shape.Heads],
            KvHeads = [shape.KvHeads],
            RopeDimensions = shape.Heads > 0 ? shape.Dim / shape.Heads : null,
            ContextLength = shape.ContextLength,
            Vocabulary = vocabulary,
            TokenEmbedding = vocabulary is { } v ? [shape.Dim, v] : null,
        };
    }

    /// <summary>The first value llama.cpp cannot load, naming its GGUF key and the allowed range; null when all are fine.</summary>
    public string? Problem()
    {
        string a = Architecture;
        if (Layers is { } layers && layers is < 1 or > MaxLayers)
            return Say($"{a}.block_count is {layers}; llama.cpp loads 1..{MaxLayers} layers (LLAMA_MAX_LAYERS)");
        if (Embedding is { } embd && embd is < 1 or > int.MaxValue)
            return Say($"{a}.embedding_length is {embd}; it must be at least 1");
        // Recurrent models have no attention heads, and hybrids list 0 for their recurrent layers: only a single head count
        // of a transformer must be at least 1; a per-layer list may hold zeros.
        if (Heads is { } heads && !a.StartsWith("mamba", StringComparison.Ordinal) && !a.StartsWith("rwkv", StringComparison.Ordinal))
        {
            if (heads.Count == 0 || heads.Any(h => h is < 0 or > int.MaxValue) || (heads.Count == 1 && heads[0] < 1))
                return Say($"{a}.attention.head_count is {Show(heads)}; a transformer needs at least 1 head");
            if (heads.Count > 1 && Layers is { } n && heads.Count != n)
                return Say($"{a}.attention.head_count has {heads.Count} entries for {n} layers");
            if (Embedding is { } e && heads.Any(h => h > 0 && e % h != 0))
                return Say($"{a}.attention.head_count ({Show(heads)}) must divide {a}.embedding_length ({e})");
            if (KvHeads is { } kv)
            {
                if (kv.Count == 0 || kv.Any(h => h is < 0 or > int.MaxValue) || (kv.Count == 1 && kv[0] < 1))
                    return Say($"{a}.attention.head_count_kv is {Show(kv)}; it must be at least 1");
                if (kv.Count == 1 && heads.Count == 1 && heads[0] % kv[0] != 0)
                    return Say($"{a}.attention.head_count_kv ({kv[0]}) must divide {a}.attention.head_count ({heads[0]})");
            }
            if (RopeDimensions is { } rope && Embedding is { } d && heads.Count == 1 && rope != d / heads[0])
                return Say($"{a}.rope.dimension_count is {rope}; llama.cpp needs the head dimension {a}.embedding_length / {a}.attention.head_count = {d / heads[0]}");
        }
        if (ContextLength is { } ctx && ctx is < 1 or > int.MaxValue)
            return Say($"{a}.context_length is {ctx}; it must be 1..{int.MaxValue}");
        if (Experts is { } experts && experts is < 0 or > MaxExperts)
            return Say($"{a}.expert_count is {experts}; llama.cpp loads 0..{MaxExperts} experts (LLAMA_MAX_EXPERTS)");
        long used = ExpertsUsed ?? 0, count = Experts ?? 0;
        if (used < 0 || used > count || (count > 0 && used == 0))
            return Say($"{a}.expert_used_count is {used} with {count} experts; it must be 1..{a}.expert_count (0 without experts)");
        if (Vocabulary is { } vocab && vocab is < 1 or > MaxVocabulary)
            return Say($"the vocabulary (tokenizer.ggml.tokens) has {vocab:N0} tokens; llama.cpp loads 1..{MaxVocabulary:N0} here");
        if (RopeScaling is { } rs && !KnownRopeScalings.Contains(rs, StringComparer.Ordinal))
            return Say($"{a}.rope.scaling.type is '{rs}'; llama.cpp knows {string.Join(", ", KnownRopeScalings)}");
        if (TokenEmbedding is { } te && (te.Count != 2 || (Embedding is { } de && te[0] != de) || (Vocabulary is { } dv && te[1] != dv)))
            return Say($"tensor token_embd.weight is [{string.Join(", ", te)}], but the header declares [{Embedding?.ToString(CultureInfo.InvariantCulture) ?? "?"}, {Vocabulary?.ToString(CultureInfo.InvariantCulture) ?? "?"}] ({a}.embedding_length, vocabulary)");
        return null;

        static string Say(FormattableString text) => FormattableString.Invariant(text);
        static string Show(IReadOnlyList<long> values) => values.Count == 1 ? values[0].ToString(CultureInfo.InvariantCulture) : $"[{string.Join(", ", values.Take(8))}{(values.Count > 8 ? ", ..." : "")}]";
    }

    private static long[]? IntegerOrArray(GgufHeader header, string key)
    {
        if (header.GetInteger(key) is { } one) return [one];
        if (!header.Metadata.TryGetValue(key, out var value) || value is not object[] items) return null;
        var result = new long[items.Length];
        for (int i = 0; i < items.Length; i++)
            result[i] = items[i] switch
            {
                ulong u => (long)Math.Min(u, long.MaxValue),
                byte or sbyte or short or ushort or int or uint or long => Convert.ToInt64(items[i], CultureInfo.InvariantCulture),
                _ => -1,
            };
        return result;
    }
}
