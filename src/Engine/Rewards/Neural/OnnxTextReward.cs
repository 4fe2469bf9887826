namespace Tilt.Engine.Rewards.Neural;

/// <summary>
/// What the ONNX text rewards share: the (shared) session of the model, its tokenizer, the output they read, their options
/// and a count of the ONNX Runtime runs they made.
/// </summary>
public abstract class OnnxTextReward : IReward
{
    private long _runs;

    private protected OnnxTextReward(OnnxTextModel model, TextTokenizer tokenizer, string output, NeuralRewardOptions options)
    {
        Model = model;
        Tokenizer = tokenizer;
        OutputName = output;
        Options = options;
    }

    private protected OnnxTextModel Model { get; }
    private protected TextTokenizer Tokenizer { get; }

    /// <summary>The graph output the reward reads.</summary>
    private protected string OutputName { get; }

    /// <summary>The .onnx file (full path).</summary>
    public string ModelPath => Model.Path;

    /// <summary>The tokenizer file (full path).</summary>
    public string TokenizerPath => Tokenizer.Path;

    public NeuralRewardOptions Options { get; }

    public string Description { get; private protected set; } = "";

    public bool NeedsHiddenState => false;

    /// <summary>ONNX Runtime runs this reward has made (for tests of batching; the session is shared, so its own count is not).</summary>
    internal long RunCount => Interlocked.Read(ref _runs);

    /// <summary>The shared session (for tests of sharing).</summary>
    internal object Session => Model;

    /// <summary>Counts one ONNX Runtime run.</summary>
    private protected void CountRun() => Interlocked.Increment(ref _runs);

    public abstract void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards);
}
