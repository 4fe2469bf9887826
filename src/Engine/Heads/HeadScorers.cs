using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Kernels;

namespace Tilt.Engine.Heads;

/// <summary>A trained head as a value function: V(x, y^t) = head(hidden state after the prefix's last token).</summary>
public sealed class HeadValue : IValueFunction
{
    private readonly ValueHead _head;
    private float[] _scratch = [];

    public HeadValue(HeadFile file, ModelInfo model, string source)
    {
        _head = DecodingHead(file, model, source, "prefixes");
        Description = $"head:{Path.GetFileName(source)}";
        WeightsSha256 = file.Header.WeightsSha256;
    }

    /// <summary>
    /// The kernel head of a file checked for use while decoding: made for <paramref name="model"/>, and reading the last
    /// token's hidden state (the only one a decode step has).
    /// </summary>
    internal static ValueHead DecodingHead(HeadFile file, ModelInfo model, string source, string what)
    {
        ArgumentNullException.ThrowIfNull(file);
        file.CheckModel(model, source);
        if (file.Header.Feature != "last")
            throw new TiltException($"{source}: a '{file.Header.Feature}' head cannot score {what} while decoding (only 'last' hidden states are available)");
        return file.ToKernelHead(source);
    }

    /// <summary>The head file's weight hash: what identifies this value, whatever the file is called.</summary>
    public string WeightsSha256 { get; }

    /// <summary>Loads a head file and checks it against the model.</summary>
    public static HeadValue Load(string path, ModelInfo model) => new(HeadFile.Read(path), model, Path.GetFullPath(path));

    public string Description { get; }
    public bool NeedsInputs => false;

    /// <summary>The kernel head, so the scheduler can score every request's rows with one batched call per head.</summary>
    internal ValueHead Head => _head;

    public void Evaluate(IReadOnlyList<RewardInput>? inputs, ReadOnlySpan<float> hidden, int count, Span<double> values)
    {
        if (_scratch.Length < count) _scratch = new float[count];
        _head.Score(hidden[..(count * _head.InputSize)], count, _scratch);
        for (int i = 0; i < count; i++) values[i] = _scratch[i];
    }
}

/// <summary>A trained head as a reward: r(x, y) = head(hidden state after the text's last token).</summary>
public sealed class HeadReward : IReward
{
    private readonly ValueHead _head;
    private readonly int _d;

    public HeadReward(HeadFile file, ModelInfo model, string source)
    {
        _head = HeadValue.DecodingHead(file, model, source, "candidates");
        _d = file.Header.HiddenSize;
        Description = $"head:{source}";
    }

    /// <summary>Loads a head file and checks it against the model.</summary>
    public static HeadReward Load(string path, ModelInfo model) => new(HeadFile.Read(path), model, Path.GetFullPath(path));

    public string Description { get; }
    public bool NeedsHiddenState => true;

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        int n = candidates.Count;
        var hidden = new float[n * _d];
        for (int i = 0; i < n; i++)
        {
            var h = candidates[i].FinalHidden.Span;
            if (h.Length != _d)
                throw new TiltException($"{Description}: candidate {i} has no hidden state of size {_d} (got {h.Length})");
            h.CopyTo(hidden.AsSpan(i * _d, _d));
        }
        var scores = new float[n];
        _head.Score(hidden, n, scores);
        for (int i = 0; i < n; i++) rewards[i] = scores[i];
    }
}
