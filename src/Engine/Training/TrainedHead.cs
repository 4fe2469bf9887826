using System.Numerics.Tensors;
using System.Text.Json;
using Tilt.Engine.Heads;
using Tilt.Kernels;

namespace Tilt.Engine.Training;

/// <summary>
/// The parameters of a head as trainers hold them: weights over standardized features z = (h - mean) / std, in the
/// layout of the head file (<see cref="HeadFile.Weights"/>). Linear: V = z . w + b. Two-layer:
/// V = w2 . act(W1 z + b1) + b2.
/// </summary>
public sealed class TrainedHead
{
    private TrainedHead(HeadKind kind, FeatureScaling scaling, int units, HeadActivation activation, float[] w1, float[] b1, float[] w2, double b2)
    {
        Kind = kind;
        Scaling = scaling;
        HiddenUnits = units;
        Activation = activation;
        W1 = w1;
        B1 = b1;
        W2 = w2;
        B2 = b2;
    }

    /// <summary>A linear head z . w + b.</summary>
    public static TrainedHead Linear(FeatureScaling scaling, ReadOnlySpan<double> weights, double bias)
    {
        ArgumentNullException.ThrowIfNull(scaling);
        if (weights.Length != scaling.Dimension) throw new ArgumentException($"{weights.Length} weights for d = {scaling.Dimension}", nameof(weights));
        var w = new float[weights.Length];
        for (int j = 0; j < w.Length; j++) w[j] = (float)weights[j];
        return new TrainedHead(HeadKind.Linear, scaling, 0, HeadActivation.Relu, w, [], [], bias);
    }

    /// <summary>A two-layer head; arrays are taken over (not copied).</summary>
    /// <param name="w1">[units, d].</param>
    /// <param name="b1">[units].</param>
    /// <param name="w2">[units].</param>
    public static TrainedHead Mlp(FeatureScaling scaling, float[] w1, float[] b1, float[] w2, double b2, HeadActivation activation)
    {
        ArgumentNullException.ThrowIfNull(scaling);
        int units = b1.Length;
        if (units < 1 || w1.Length != units * scaling.Dimension || w2.Length != units)
            throw new ArgumentException($"shapes do not agree: w1 {w1.Length}, b1 {b1.Length}, w2 {w2.Length} for d = {scaling.Dimension}", nameof(w1));
        return new TrainedHead(HeadKind.Mlp, scaling, units, activation, w1, b1, w2, b2);
    }

    public HeadKind Kind { get; }
    public FeatureScaling Scaling { get; }
    public int Dimension => Scaling.Dimension;
    public int HiddenUnits { get; }
    public HeadActivation Activation { get; }

    /// <summary>Linear: w [d]. Two-layer: W1 [units, d].</summary>
    public float[] W1 { get; }

    /// <summary>Two-layer: b1 [units]; empty for linear heads.</summary>
    public float[] B1 { get; }

    /// <summary>Two-layer: w2 [units]; empty for linear heads.</summary>
    public float[] W2 { get; }

    /// <summary>The output bias (b or b2).</summary>
    public double B2 { get; }

    /// <summary>V of one raw hidden state; <paramref name="scratch"/> needs d + units floats.</summary>
    public double Predict(ReadOnlySpan<float> hidden, Span<float> scratch)
    {
        int d = Dimension;
        var z = scratch[..d];
        Scaling.Apply(hidden, z);
        return PredictStandardized(z, scratch.Slice(d, HiddenUnits));
    }

    /// <summary>V of one standardized row z; <paramref name="units"/> is scratch of HiddenUnits floats.</summary>
    public double PredictStandardized(ReadOnlySpan<float> z, Span<float> units)
    {
        if (Kind == HeadKind.Linear) return TensorPrimitives.Dot(z, W1) + B2;
        int d = Dimension;
        double v = B2;
        for (int j = 0; j < HiddenUnits; j++)
        {
            double a = TensorPrimitives.Dot(z, W1.AsSpan(j * d, d)) + B1[j];
            double h = Activations.Value(a, Activation);
            units[j] = (float)h;
            v += W2[j] * h;
        }
        return v;
    }

    /// <summary>Scratch floats <see cref="Predict(ReadOnlySpan{float}, Span{float})"/> needs.</summary>
    public int ScratchSize => Dimension + HiddenUnits;

    /// <summary>Scores many rows.</summary>
    public void Predict(IFeatureRows rows, Span<double> values)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var scratch = new float[ScratchSize];
        for (int i = 0; i < rows.Count; i++) values[i] = Predict(rows.Row(i), scratch);
    }

    /// <summary>A copy with the output bias replaced.</summary>
    public TrainedHead WithBias(double bias) => new(Kind, Scaling, HiddenUnits, Activation, W1, B1, W2, bias);

    /// <summary>The head as a file: normalization first, then the layer weights (docs/head-file.md).</summary>
    public HeadFile ToHeadFile(HeadRole role, string modelFingerprint, string feature, string? description, Dictionary<string, JsonElement>? training)
    {
        int d = Dimension;
        var weights = new List<float>(2 * d + W1.Length + B1.Length + W2.Length + 1);
        weights.AddRange(Scaling.Mean);
        weights.AddRange(Scaling.Std);
        weights.AddRange(W1);
        if (Kind == HeadKind.Linear)
        {
            weights.Add((float)B2);
        }
        else
        {
            weights.AddRange(B1);
            weights.AddRange(W2);
            weights.Add((float)B2);
        }
        var header = new HeadHeader
        {
            Kind = Kind,
            Role = role,
            ModelFingerprint = modelFingerprint,
            HiddenSize = d,
            HiddenUnits = HiddenUnits,
            Activation = Activation,
            Feature = feature,
            Normalized = true,
            Description = description,
            Training = training,
        };
        return new HeadFile(header, weights.ToArray());
    }

    /// <summary>Reads the parameters back from a normalized head file (to continue training or to score offline).</summary>
    public static TrainedHead FromHeadFile(HeadFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var h = file.Header;
        int d = h.HiddenSize;
        var w = file.Weights;
        int offset = 0;
        FeatureScaling scaling;
        if (h.Normalized)
        {
            scaling = new FeatureScaling(w.AsSpan(0, d), w.AsSpan(d, d).ToArray().Select(s => s > 0 ? s : 1f).ToArray());
            offset = 2 * d;
        }
        else
        {
            scaling = FeatureScaling.Identity(d);
        }
        if (h.Kind == HeadKind.Linear)
            return new TrainedHead(HeadKind.Linear, scaling, 0, h.Activation, w.AsSpan(offset, d).ToArray(), [], [], w[offset + d]);
        int units = h.HiddenUnits;
        return new TrainedHead(HeadKind.Mlp, scaling, units, h.Activation,
            w.AsSpan(offset, units * d).ToArray(), w.AsSpan(offset + units * d, units).ToArray(),
            w.AsSpan(offset + units * d + units, units).ToArray(), w[offset + units * d + 2 * units]);
    }
}

/// <summary>The activations of <see cref="MlpValueHead"/> and their derivatives, in float64.</summary>
internal static class Activations
{
    private const double InvSqrt2 = 0.70710678118654752;
    private const double InvSqrt2Pi = 0.39894228040143268;

    public static double Value(double x, HeadActivation activation) =>
        activation == HeadActivation.Relu ? (x > 0 ? x : 0) : 0.5 * x * (1 + Erf(x * InvSqrt2));

    public static double Derivative(double x, HeadActivation activation) =>
        activation == HeadActivation.Relu
            ? (x > 0 ? 1 : 0)
            : 0.5 * (1 + Erf(x * InvSqrt2)) + x * InvSqrt2Pi * Math.Exp(-0.5 * x * x);

    // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), the approximation the kernels use.
    private static double Erf(double x)
    {
        double z = Math.Abs(x);
        double t = 1 / (1 + 0.3275911 * z);
        double poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        double erf = 1 - poly * Math.Exp(-z * z);
        return x < 0 ? -erf : erf;
    }
}
