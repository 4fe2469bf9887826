using System.Text;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// r(x, y) = cos(e(y), e(target)): the cosine between the response's sentence embedding and a target text's, from an
/// ONNX embedding model (sentence-transformers exports such as all-MiniLM-L6-v2). A sentence embedding is the mean of
/// <c>last_hidden_state</c> over the attention mask, L2-normalised, as those models were trained; r lies in [-1, 1].
/// Only <see cref="RewardInput.Text"/> is embedded, never the prompt. All candidates of a call are scored in one
/// ONNX Runtime run (split only past <see cref="MaxTokensPerRun"/> padded tokens); texts longer than
/// <see cref="NeuralRewardOptions.MaxLength"/> tokens are truncated.
/// Spec: <c>similarity:MODEL.onnx[,max-length=N][,tokenizer=FILE][,device=cpu|cuda]|TARGET TEXT</c>.
/// </summary>
public sealed class SimilarityReward : OnnxTextReward
{
    /// <summary>Padded tokens (rows x longest row) per run: bounds the activations of one run (~70 MB per layer for MiniLM).</summary>
    public const int MaxTokensPerRun = 65_536;

    private readonly double[] _target; // [d], unit length

    private SimilarityReward(OnnxTextModel model, TextTokenizer tokenizer, string output, string target, NeuralRewardOptions options)
        : base(model, tokenizer, output, options)
    {
        Target = target;
        _target = Embed([target]);
        Dimension = _target.Length;
        Description = $"similarity:{model.Path}{options.Describe(classifier: false)}|{EscapeText(target)}";
    }

    /// <summary>Loads (or reuses) the model and tokenizer and embeds the target.</summary>
    /// <param name="modelPath">The .onnx file; its tokenizer is found beside it unless <see cref="NeuralRewardOptions.TokenizerPath"/> names one.</param>
    /// <param name="target">The text candidates should resemble; not empty.</param>
    /// <param name="options">Defaults to <see cref="NeuralRewardOptions.Default"/>.</param>
    /// <exception cref="ArgumentException">The target is empty or white space.</exception>
    /// <exception cref="TiltException">A file is missing or does not fit (named in the message), or the device is unavailable.</exception>
    public static SimilarityReward Create(string modelPath, string target, NeuralRewardOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(target);
        if (string.IsNullOrWhiteSpace(target))
        {
            throw new ArgumentException("the target text of a similarity reward is empty", nameof(target));
        }

        options ??= NeuralRewardOptions.Default;
        var model = OnnxTextModel.Load(modelPath, options.Session);
        var tokenizer = TextTokenizer.Load(options.ResolveTokenizer(modelPath));
        string output = model.FindOutput("token embeddings", rank: 3, "last_hidden_state", "token_embeddings");
        model.EnsureAccepts(tokenizer, options.MaxLength);
        return new SimilarityReward(model, tokenizer, output, target, options);
    }

    public string Target { get; }


    /// <summary>The embedding size (384 for MiniLM).</summary>
    public int Dimension { get; }


    public override void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        var texts = new string[candidates.Count];
        for (int i = 0; i < texts.Length; i++)
        {
            texts[i] = candidates[i].Text;
        }

        double[] embeddings = Embed(texts); // [n, d]
        int d = Dimension;
        for (int i = 0; i < texts.Length; i++)
        {
            double dot = 0.0;
            for (int h = 0; h < d; h++)
            {
                dot += embeddings[i * d + h] * _target[h];
            }

            rewards[i] = dot;
        }
    }

    /// <summary>Sentence embeddings [texts.Count, d], unit length, computed in as few runs as <see cref="MaxTokensPerRun"/> allows.</summary>
    internal double[] Embed(IReadOnlyList<string> texts)
    {
        var rows = new EncodedText[texts.Count];
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = new EncodedText(Tokenizer.Encode(texts[i], Options.MaxLength), null);
        }

        double[]? embeddings = null;
        int start = 0;
        while (start < rows.Length)
        {
            int end = start + 1, width = rows[start].Ids.Length;
            while (end < rows.Length && (end + 1 - start) * Math.Max(width, rows[end].Ids.Length) <= MaxTokensPerRun)
            {
                width = Math.Max(width, rows[end].Ids.Length);
                end++;
            }

            var chunk = new ArraySegment<EncodedText>(rows, start, end - start);
            int offset = start;
            CountRun();
            Model.Run(chunk, Tokenizer.PaddingId, OutputName, (data, shape) =>
            {
                int d = checked((int)shape[2]);
                embeddings ??= new double[rows.Length * d];
                Pool(chunk, data, checked((int)shape[1]), d, embeddings.AsSpan(offset * d, chunk.Count * d));
            });
            start = end;
        }

        return embeddings ?? [];
    }

    /// <summary>
    /// Mean of the token states over each row's real tokens (padding excluded), then L2-normalised; in double so the
    /// float32 states are summed without loss. <paramref name="states"/> is [rows, width, d].
    /// </summary>
    private static void Pool(IReadOnlyList<EncodedText> rows, ReadOnlySpan<float> states, int width, int d, Span<double> embeddings)
    {
        for (int r = 0; r < rows.Count; r++)
        {
            Span<double> e = embeddings.Slice(r * d, d);
            e.Clear();
            int length = rows[r].Ids.Length;
            for (int j = 0; j < length; j++)
            {
                ReadOnlySpan<float> token = states.Slice((r * width + j) * d, d);
                for (int h = 0; h < d; h++)
                {
                    e[h] += token[h];
                }
            }

            double norm = 0.0;
            for (int h = 0; h < d; h++)
            {
                e[h] /= length;
                norm += e[h] * e[h];
            }

            // A zero mean (never seen in practice) stays zero rather than becoming NaN: its cosine to anything is 0.
            double scale = norm > 0.0 ? 1.0 / Math.Sqrt(norm) : 0.0;
            for (int h = 0; h < d; h++)
            {
                e[h] *= scale;
            }
        }
    }

    /// <summary>Escapes '\', '+', ';', '(' and ')' with '\' so that a target reads back from a spec unchanged.</summary>
    internal static string EscapeText(string text)
    {
        var escaped = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            if (c is '\\' or '+' or ';' or '(' or ')')
            {
                escaped.Append('\\');
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }

    /// <summary>Drops the '\' before any character (a trailing lone '\' stays).</summary>
    internal static string UnescapeText(string text)
    {
        var plain = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\' && i + 1 < text.Length)
            {
                i++;
            }

            plain.Append(text[i]);
        }

        return plain.ToString();
    }
}
