using System.Globalization;

namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// r(x, y) = logit[label] of an ONNX sequence classifier (a reward model with one logit, such as a DeBERTa or BERT
/// reward model exported from Hugging Face, or a text classifier with several labels). By default the classifier
/// reads the pair (prompt, response) as <c>[CLS] prompt [SEP] response [SEP]</c>, segment ids 0 then 1;
/// <see cref="ClassifierInput.Response"/> reads the response alone. All candidates of a call are scored in one ONNX
/// Runtime run (split only past <see cref="SimilarityReward.MaxTokensPerRun"/> padded tokens); too long a text is
/// truncated to <see cref="NeuralRewardOptions.MaxLength"/> tokens (a pair keeps the response and the end of the prompt).
/// Spec: <c>onnx:MODEL.onnx[,label=I][,input=response|prompt+response][,max-length=N][,tokenizer=FILE][,device=cpu|cuda]</c>.
/// </summary>
public sealed class OnnxClassifierReward : OnnxTextReward
{
    private OnnxClassifierReward(OnnxTextModel model, TextTokenizer tokenizer, string output, NeuralRewardOptions options)
        : base(model, tokenizer, output, options)
    {
        Description = $"onnx:{model.Path}{options.Describe(classifier: true)}";
    }

    /// <summary>Loads (or reuses) the model and tokenizer.</summary>
    /// <param name="modelPath">The .onnx file, with an output <c>logits</c> [batch, labels] (or a single rank-2 float output).</param>
    /// <param name="options">Defaults to <see cref="NeuralRewardOptions.Default"/>.</param>
    /// <exception cref="TiltException">A file is missing or does not fit (named in the message), the label is beyond the
    /// graph's logits, or the device is unavailable.</exception>
    public static OnnxClassifierReward Create(string modelPath, NeuralRewardOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        options ??= NeuralRewardOptions.Default;
        var model = OnnxTextModel.Load(modelPath, options.Session);
        var tokenizer = TextTokenizer.Load(options.ResolveTokenizer(modelPath));
        string output = model.FindOutput("classifier logits", rank: 2, "logits");
        if (model.OutputDimension(output, 1) is long labels && options.Label >= labels)
        {
            throw new TiltException($"{model.Path}: label={options.Label}, but output {output} has {labels} logits (labels 0..{labels - 1})");
        }

        model.EnsureAccepts(tokenizer, options.MaxLength);
        return new OnnxClassifierReward(model, tokenizer, output, options);
    }



    public override void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        int n = candidates.Count;
        var rows = new EncodedText[n];
        for (int i = 0; i < n; i++)
        {
            rows[i] = Options.Input == ClassifierInput.Response
                ? new EncodedText(Tokenizer.Encode(candidates[i].Text, Options.MaxLength), null)
                : Pair(candidates[i]);
        }

        var scores = new double[n];
        int start = 0;
        while (start < n)
        {
            int end = start + 1, width = rows[start].Ids.Length;
            while (end < n && (end + 1 - start) * Math.Max(width, rows[end].Ids.Length) <= SimilarityReward.MaxTokensPerRun)
            {
                width = Math.Max(width, rows[end].Ids.Length);
                end++;
            }

            int offset = start;
            CountRun();
            Model.Run(new ArraySegment<EncodedText>(rows, start, end - start), Tokenizer.PaddingId, OutputName, (logits, shape) =>
            {
                long labels = shape[1]; // logits: [rows, labels]
                if (Options.Label >= labels)
                {
                    throw new TiltException(
                        $"{Model.Path}: label={Options.Label.ToString(CultureInfo.InvariantCulture)}, but output {OutputName} has {labels} logits");
                }

                for (int r = 0; r < shape[0]; r++)
                {
                    scores[offset + r] = logits[checked((int)(r * labels + Options.Label))];
                }
            });
            start = end;
        }

        scores.CopyTo(rewards);
    }

    private EncodedText Pair(RewardInput candidate)
    {
        var (ids, segments) = Tokenizer.EncodePair(candidate.Prompt, candidate.Text, Options.MaxLength);
        return new EncodedText(ids, segments);
    }
}
