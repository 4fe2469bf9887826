using System.Collections.Concurrent;
using System.Numerics;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;

namespace Tilt.Engine.Rewards.Llama;

/// <summary>
/// The GGUF backbone of an LLM reward model, loaded once per file for the life of the process (<see cref="Load"/>) and
/// shared by every <c>rm:</c> reward naming it, whatever its head. It teacher-forces whole texts and returns the final
/// hidden state (after the last norm, what Hugging Face's sequence-classification score reads) of each text's last
/// token. Batched: the texts' common token prefix is decoded once and its KV forked, then every text advances one
/// token per decode, all texts in the same decode, as the policy's candidates do. Thread-safe: one call at a time.
/// </summary>
internal sealed class RewardBackbone
{
    private static readonly ConcurrentDictionary<string, Lazy<RewardBackbone>> Cache = new(StringComparer.Ordinal);

    private readonly Lock _lock = new();
    private IDecodingSession? _session;

    private RewardBackbone(GgufModel model) => Model = model;

    public GgufModel Model { get; }

    public ModelInfo Info => Model.Info;

    /// <summary>
    /// The backbone of <paramref name="path"/>, loaded on first use and kept (keyed by full path). A file that fails to
    /// load is not cached, so a fixed file loads on the next try.
    /// </summary>
    /// <exception cref="TiltException">The file is missing, not a GGUF model, or llama.cpp cannot load it.</exception>
    public static RewardBackbone Load(string path)
    {
        string full = Path.GetFullPath(path);
        var lazy = Cache.GetOrAdd(full, p => new Lazy<RewardBackbone>(() => new RewardBackbone(GgufModel.Load(p)), LazyThreadSafetyMode.ExecutionAndPublication));
        try
        {
            return lazy.Value;
        }
        catch
        {
            Cache.TryRemove(new KeyValuePair<string, Lazy<RewardBackbone>>(full, lazy));
            throw;
        }
    }

    /// <summary>Tokens of a formatted text as the backbone reads it (special tokens parsed, BOS once).</summary>
    public int[] Tokenize(string text) => Model.TokenizeWithSpecialTokens(text);

    /// <summary>
    /// [texts.Count, HiddenSize] row-major: row i is the final hidden state after the last token of texts[i].
    /// </summary>
    /// <exception cref="TiltException">An empty text, or a text longer than the backbone's trained context.</exception>
    public float[] LastHiddenStates(IReadOnlyList<int[]> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        int d = Info.HiddenSize;
        var result = new float[texts.Count * d];
        for (int i = 0; i < texts.Count; i++)
        {
            if (texts[i].Length == 0) throw new TiltException($"rm: text {i} has no tokens for the reward model {Info.Path}");
            if (texts[i].Length > Info.TrainedContextSize)
                throw new TiltException($"rm: text {i} is {texts[i].Length} tokens, more than the reward model's context of {Info.TrainedContextSize} ({Info.Path})");
        }
        lock (_lock)
        {
            for (int start = 0; start < texts.Count; start += SessionOptions.MaxSupportedSequences)
            {
                int count = Math.Min(SessionOptions.MaxSupportedSequences, texts.Count - start);
                DecodeChunk(texts, start, count, result);
            }
        }
        return result;
    }

    /// <summary>Texts start..start+count-1 on sequences 0..count-1 of the session.</summary>
    private void DecodeChunk(IReadOnlyList<int[]> texts, int start, int count, float[] result)
    {
        int d = Info.HiddenSize;
        int longest = 0, shortest = int.MaxValue;
        for (int m = 0; m < count; m++)
        {
            longest = Math.Max(longest, texts[start + m].Length);
            shortest = Math.Min(shortest, texts[start + m].Length);
        }
        // The shared prefix stops one token short of the shortest text, so every text has a token left to decode and
        // its last hidden state comes from a step row.
        int shared = Math.Min(CommonPrefix(texts, start, count), shortest - 1);
        var session = SessionFor(count, longest + 1);
        try
        {
            int position; // tokens every live sequence holds before the next step
            if (shared > 0)
            {
                session.Prefill(0, texts[start].AsSpan(0, shared));
                for (int m = 1; m < count; m++) session.CopySequence(0, m);
                position = shared;
            }
            else
            {
                // Nothing shared (no BOS): each text's first token is its own prefill, and a one-token text ends there.
                for (int m = 0; m < count; m++)
                {
                    session.Prefill(m, texts[start + m].AsSpan(0, 1));
                    if (texts[start + m].Length == 1) session.Hidden[..d].CopyTo(result.AsSpan((start + m) * d, d));
                }
                position = 1;
            }

            var sequences = new List<int>(count);
            var tokens = new List<int>(count);
            for (; position < longest; position++)
            {
                sequences.Clear();
                tokens.Clear();
                for (int m = 0; m < count; m++)
                {
                    if (texts[start + m].Length <= position) continue;
                    sequences.Add(m);
                    tokens.Add(texts[start + m][position]);
                }
                session.Step(sequences.ToArray(), tokens.ToArray());
                ReadOnlySpan<float> hidden = session.Hidden; // [rows, d], valid until the next step
                for (int row = 0; row < sequences.Count; row++)
                {
                    int text = start + sequences[row];
                    if (texts[text].Length == position + 1) hidden.Slice(row * d, d).CopyTo(result.AsSpan(text * d, d));
                }
            }
        }
        finally
        {
            for (int m = 0; m < count; m++) session.RemoveSequence(m);
        }
    }

    private static int CommonPrefix(IReadOnlyList<int[]> texts, int start, int count)
    {
        int[] first = texts[start];
        int length = first.Length;
        for (int m = 1; m < count && length > 0; m++)
            length = first.AsSpan(0, length).CommonPrefixLength(texts[start + m]);
        return length;
    }

    /// <summary>The kept session when it is large enough, else a larger one (sizes only grow, so few are created).</summary>
    private IDecodingSession SessionFor(int sequences, int length)
    {
        if (_session is { } s && s.MaxSequences >= sequences && s.MaxSequenceLength >= length) return s;
        int seqs = Math.Max(sequences, _session?.MaxSequences ?? 1);
        long rounded = Math.Max(64, BitOperations.RoundUpToPowerOf2((uint)Math.Max(length, _session?.MaxSequenceLength ?? 0)));
        int len = (int)Math.Max(length, Math.Min(rounded, (long)Info.TrainedContextSize + 1));
        _session?.Dispose();
        _session = null;
        _session = Model.CreateSession(new SessionOptions { MaxSequences = seqs, MaxSequenceLength = len });
        return _session;
    }
}
