using Tilt.Engine.Models;

namespace Tilt.Engine.Training;

/// <summary>Which hidden state represents a text.</summary>
public enum TextFeature
{
    /// <summary>The final hidden state after the text's last token: what strategies give a reward head while decoding.</summary>
    Last,

    /// <summary>The mean of the final hidden states after each text token (offline scoring only: decoders cannot supply it).</summary>
    Mean,
}

/// <summary>
/// Features of finished texts for reward heads (issue step 4): each (prompt, text) is read by the model and the final
/// hidden state at the end of the text, or the mean over the text's positions, is kept. Texts are decoded in batches
/// of independent sequences, one decode call per position over the batch.
/// <para>
/// Tokenization: the prompt and the text are tokenized as ONE string, prompt + text, as the model would read the whole
/// document, and the text's positions are those after the longest common prefix with the prompt's own tokens. The
/// model's own continuations start with a space-prefixed word (" there was ..."), and then prompt + text tokenizes
/// to exactly the prompt's tokens followed by the generated ones (checked on stories260K), so the features match
/// what a decoder saw. When the boundary merges (a text starting mid-word), the merged token counts as text. A
/// tabular model's words are joined with one space.
/// </para>
/// </summary>
public sealed class TextFeaturizer
{
    private readonly ILanguageModel _model;
    private readonly TextFeature _feature;
    private readonly int _batchSize;
    private readonly int? _threads;
    private readonly KvCacheType _kvCacheType;

    /// <param name="batchSize">Texts decoded together (1..256).</param>
    public TextFeaturizer(ILanguageModel model, TextFeature feature = TextFeature.Last, int batchSize = 128, int? threads = null, KvCacheType kvCacheType = KvCacheType.F16)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        if (batchSize is < 1 or > SessionOptions.MaxSupportedSequences)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"the batch size must be between 1 and {SessionOptions.MaxSupportedSequences}");
        _feature = feature;
        _batchSize = batchSize;
        _threads = threads;
        _kvCacheType = kvCacheType;
    }

    /// <summary>The tokens the model reads for (prompt, text) and where the text's tokens start.</summary>
    public static (int[] Tokens, int TextStart) Tokenize(ILanguageModel model, string prompt, string text)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(text);
        int[] promptTokens = model.Tokenize(prompt);
        if (model.Info.Kind == ModelKind.Tabular)
            return ([.. promptTokens, .. model.Tokenize(text, addBos: false)], promptTokens.Length);
        int[] all = model.Tokenize(prompt + text);
        int common = 0;
        while (common < promptTokens.Length && common < all.Length && promptTokens[common] == all[common]) common++;
        return (all, common);
    }

    /// <summary>[texts, d] features, row i for texts[i].</summary>
    public float[] Featurize(IReadOnlyList<(string Prompt, string Text)> texts, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var info = _model.Info;
        int d = info.HiddenSize, n = texts.Count;
        var features = new float[(long)n * d];
        if (n == 0) return features;
        var tokenized = new (int[] Tokens, int TextStart)[n];
        for (int i = 0; i < n; i++)
        {
            tokenized[i] = Tokenize(_model, texts[i].Prompt, texts[i].Text);
            if (tokenized[i].Tokens.Length > info.TrainedContextSize)
                throw new TiltException($"text {i} is {tokenized[i].Tokens.Length} tokens with its prompt, more than the model's context of {info.TrainedContextSize}");
        }
        // A GGUF sequence starts with at least one prefilled token (BOS); a tabular one may start empty.
        int minimumPrefill = info.Kind == ModelKind.Tabular ? 0 : 1;
        int k = Math.Min(_batchSize, n);
        using var session = _model.CreateSession(new SessionOptions
        {
            MaxSequences = k,
            MaxSequenceLength = tokenized.Max(t => t.Tokens.Length) + 1,
            Threads = _threads,
            KvCacheType = _kvCacheType,
        });
        var sums = new double[k * d];
        var counts = new int[k];
        var position = new int[k];
        progress?.Report(new TrainingProgress("features", 0, n));
        for (int first = 0; first < n; first += k)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(k, n - first);
            Array.Clear(sums);
            Array.Clear(counts);
            for (int b = 0; b < count; b++)
            {
                var (tokens, start) = tokenized[first + b];
                int prefill = Math.Min(tokens.Length, Math.Max(start, minimumPrefill));
                session.RemoveSequence(b);
                session.Prefill(b, tokens.AsSpan(0, prefill));
                position[b] = prefill;
                Keep(b, session.Hidden[..d], counted: prefill > start);
            }
            var sequences = new List<int>(count);
            var next = new List<int>(count);
            while (true)
            {
                sequences.Clear();
                next.Clear();
                for (int b = 0; b < count; b++)
                {
                    var tokens = tokenized[first + b].Tokens;
                    if (position[b] >= tokens.Length) continue;
                    sequences.Add(b);
                    next.Add(tokens[position[b]++]);
                }
                if (sequences.Count == 0) break;
                session.Step(sequences.ToArray(), next.ToArray());
                var hidden = session.Hidden;
                for (int i = 0; i < sequences.Count; i++) Keep(sequences[i], hidden.Slice(i * d, d), counted: true);
            }
            for (int b = 0; b < count; b++)
            {
                if (_feature == TextFeature.Mean && counts[b] > 0)
                {
                    var row = features.AsSpan((first + b) * d, d);
                    for (int j = 0; j < d; j++) row[j] = (float)(sums[b * d + j] / counts[b]);
                }
            }
            progress?.Report(new TrainingProgress("features", first + count, n));

            // The last state always lands in the feature row; the mean replaces it when the text has positions.
            void Keep(int b, ReadOnlySpan<float> hidden, bool counted)
            {
                hidden.CopyTo(features.AsSpan((first + b) * d, d));
                if (!counted) return;
                counts[b]++;
                for (int j = 0; j < d; j++) sums[b * d + j] += hidden[j];
            }
        }
        return features;
    }
}
