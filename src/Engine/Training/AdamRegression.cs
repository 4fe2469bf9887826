using System.Numerics.Tensors;
using Tilt.Engine.Heads;
using Tilt.Kernels;

namespace Tilt.Engine.Training;

/// <summary>Rows with regression targets and optional row weights (default 1).</summary>
public sealed record RegressionData
{
    public RegressionData(IFeatureRows rows, double[] targets, double[]? weights = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(targets);
        if (targets.Length != rows.Count) throw new ArgumentException($"{targets.Length} targets for {rows.Count} rows", nameof(targets));
        if (weights is not null && weights.Length != rows.Count) throw new ArgumentException($"{weights.Length} weights for {rows.Count} rows", nameof(weights));
        foreach (double t in targets)
            if (!double.IsFinite(t)) throw new ArgumentException($"targets must be finite, got {t}", nameof(targets));
        Rows = rows;
        Targets = targets;
        Weights = weights;
    }

    public IFeatureRows Rows { get; }
    public double[] Targets { get; }
    public double[]? Weights { get; }
    public int Count => Rows.Count;
    public double Weight(int i) => Weights is null ? 1.0 : Weights[i];

    /// <summary>Weighted mean squared error of a head on these rows.</summary>
    public double MeanSquaredError(TrainedHead head)
    {
        ArgumentNullException.ThrowIfNull(head);
        var scratch = new float[head.ScratchSize];
        double sse = 0, total = 0;
        for (int i = 0; i < Count; i++)
        {
            double e = head.Predict(Rows.Row(i), scratch) - Targets[i];
            sse += Weight(i) * e * e;
            total += Weight(i);
        }
        return total > 0 ? sse / total : double.NaN;
    }
}

/// <summary>Settings of <see cref="AdamRegression"/>.</summary>
public sealed record AdamOptions
{
    /// <summary>Units of the hidden layer; 0 trains a linear head. Defaults to 64.</summary>
    public int HiddenUnits
    {
        get;
        // The head file's own bound (HeadHeader.MaxHiddenUnits): a network this trains is one its reader loads.
        init => field = value is >= 0 and <= HeadHeader.MaxHiddenUnits
            ? value
            : throw new ArgumentOutOfRangeException(nameof(HiddenUnits), value, $"hidden units must be 0..{HeadHeader.MaxHiddenUnits} (the most a head file holds), got {value}");
    } = 64;

    /// <summary>Activation of the hidden layer. Defaults to ReLU.</summary>
    public HeadActivation Activation { get; init; } = HeadActivation.Relu;

    /// <summary>Passes over the training rows at most. Defaults to 30.</summary>
    public int Epochs { get; init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Epochs), value, "epochs must be >= 1"); } = 30;

    /// <summary>Rows per Adam step. Defaults to 256.</summary>
    public int BatchSize { get; init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(BatchSize), value, "the batch size must be >= 1"); } = 256;

    /// <summary>Adam's step size. Defaults to 1e-3.</summary>
    public double LearningRate { get; init => field = value > 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(LearningRate), value, "the learning rate must be finite and > 0"); } = 1e-3;

    /// <summary>Decoupled weight decay (AdamW) on the weight matrices, not the biases. Defaults to 1e-4.</summary>
    public double WeightDecay { get; init => field = value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(WeightDecay), value, "weight decay must be finite and >= 0"); } = 1e-4;

    /// <summary>Epochs without a better validation error before stopping (when validation rows are given). Defaults to 4.</summary>
    public int Patience { get; init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Patience), value, "patience must be >= 1"); } = 4;

    /// <summary>Seed of the initialization and of the order of the rows. Defaults to 0.</summary>
    public ulong Seed { get; init; }
}

/// <summary>What <see cref="AdamRegression.Fit"/> returns: the head with the best validation error (the last one without validation rows).</summary>
public sealed record AdamFit(TrainedHead Head, double TrainMse, double ValidationMse, int EpochsRun, int BestEpoch);

/// <summary>
/// Mini-batch Adam (with decoupled weight decay and a cosine step-size decay) on the weighted squared error 1/2 sum_i w_i (V(z_i) - y_i)^2 / sum_i w_i
/// for linear and two-layer heads over standardized features: CD-FUDGE's loss [M16] when the targets are realized
/// rewards, CD-Q's [M17] when they are Bellman targets. Deterministic for a seed (single-threaded).
/// </summary>
public static class AdamRegression
{
    private const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;

    /// <param name="train">Training rows and targets.</param>
    /// <param name="scaling">Standardization of the raw rows (stored with the head).</param>
    /// <param name="options">Architecture and optimizer settings.</param>
    /// <param name="validation">Rows for early stopping; null trains all epochs and keeps the last head.</param>
    /// <param name="start">A head of the same shape to start from (warm start, e.g. between CD-Q iterations).</param>
    public static AdamFit Fit(RegressionData train, FeatureScaling scaling, AdamOptions options, RegressionData? validation = null,
        TrainedHead? start = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(scaling);
        ArgumentNullException.ThrowIfNull(options);
        int d = scaling.Dimension;
        if (train.Rows.Dimension != d) throw new ArgumentException($"rows have d = {train.Rows.Dimension}, the scaling {d}", nameof(train));
        if (train.Count == 0) throw new TiltException("training needs at least one row");
        var net = new Network(d, options.HiddenUnits, options.Activation);
        if (start is not null) net.LoadFrom(start);
        else net.Initialize(options.Seed, WeightedMean(train));

        var adam = new AdamState(net.Parameters.Length);
        var order = Enumerable.Range(0, train.Count).ToArray();
        var random = new Random(unchecked((int)(options.Seed * 2654435761UL) ^ 0x5eed));
        var z = new float[options.BatchSize * d];
        float[]? best = null;
        double bestValidation = double.PositiveInfinity, trainMse = double.NaN;
        int bestEpoch = 0, epoch = 0;
        long step = 0, totalSteps = (long)options.Epochs * ((train.Count + options.BatchSize - 1) / options.BatchSize);
        for (epoch = 1; epoch <= options.Epochs; epoch++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            random.Shuffle(order);
            double sse = 0, seen = 0;
            for (int first = 0; first < order.Length; first += options.BatchSize)
            {
                int count = Math.Min(options.BatchSize, order.Length - first);
                for (int r = 0; r < count; r++) scaling.Apply(train.Rows.Row(order[first + r]), z.AsSpan(r * d, d));
                sse += net.Gradient(z, order.AsSpan(first, count), train);
                seen += WeightOf(train, order.AsSpan(first, count));
                adam.Step(net, options.LearningRate * Schedule(step++, totalSteps), options.WeightDecay);
            }
            trainMse = seen > 0 ? sse / seen : double.NaN;
            progress?.Report(new TrainingProgress("adam", epoch, options.Epochs));
            if (validation is null) continue;
            double v = validation.MeanSquaredError(net.ToHead(scaling));
            if (v < bestValidation)
            {
                bestValidation = v;
                bestEpoch = epoch;
                best = (float[])net.Parameters.Clone();
            }
            else if (epoch - bestEpoch >= options.Patience)
            {
                break;
            }
        }
        int run = Math.Min(epoch, options.Epochs);
        if (best is not null) best.CopyTo(net.Parameters, 0);
        var head = net.ToHead(scaling);
        return new AdamFit(head, trainMse, validation is null ? double.NaN : bestValidation, run, best is null ? run : bestEpoch);
    }

    /// <summary>
    /// Cosine decay of the step size from 1 to 0.1 over the planned steps: late steps stop rattling around the
    /// optimum, so the final loss is the optimum's rather than the noise floor of a constant step size.
    /// </summary>
    private static double Schedule(long step, long total) => 0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1.0, (double)step / Math.Max(1, total))));

    private static double WeightedMean(RegressionData data)
    {
        double s = 0, w = 0;
        for (int i = 0; i < data.Count; i++)
        {
            s += data.Weight(i) * data.Targets[i];
            w += data.Weight(i);
        }
        return w > 0 ? s / w : 0;
    }

    private static double WeightOf(RegressionData data, ReadOnlySpan<int> rows)
    {
        double w = 0;
        foreach (int i in rows) w += data.Weight(i);
        return w;
    }

    /// <summary>
    /// All parameters in one array, in the head file's order: linear [w (d), b]; two-layer [W1 (units x d), b1 (units),
    /// w2 (units), b2].
    /// </summary>
    private sealed class Network
    {
        private readonly int _d, _units;
        private readonly HeadActivation _activation;
        private readonly float[] _pre, _post; // [units] pre- and post-activation of one row

        public Network(int d, int units, HeadActivation activation)
        {
            _d = d;
            _units = units;
            _activation = activation;
            int count = units == 0 ? d + 1 : units * d + 2 * units + 1;
            Parameters = new float[count];
            Gradients = new float[count];
            DecayMask = new bool[count];
            int matrix = units == 0 ? d : units * d;
            for (int i = 0; i < matrix; i++) DecayMask[i] = true;
            if (units > 0)
                for (int i = 0; i < units; i++) DecayMask[units * d + units + i] = true;
            _pre = new float[Math.Max(units, 1)];
            _post = new float[Math.Max(units, 1)];
        }

        public float[] Parameters { get; }
        public float[] Gradients { get; }
        public bool[] DecayMask { get; }

        private int B1 => _units * _d;
        private int W2 => _units * _d + _units;
        private int Last => Parameters.Length - 1;

        public void Initialize(ulong seed, double meanTarget)
        {
            var random = new Random(unchecked((int)seed) ^ 0x7117);
            if (_units > 0)
            {
                // He initialization for the first layer; the output layer starts small so the first steps fit the mean.
                double s1 = Math.Sqrt(2.0 / _d), s2 = Math.Sqrt(1.0 / _units);
                for (int i = 0; i < _units * _d; i++) Parameters[i] = (float)(s1 * Normal(random));
                for (int i = 0; i < _units; i++) Parameters[W2 + i] = (float)(s2 * Normal(random));
            }
            Parameters[Last] = (float)meanTarget;
        }

        public void LoadFrom(TrainedHead head)
        {
            bool sameShape = head.Dimension == _d && (_units == 0 ? head.Kind == HeadKind.Linear : head.Kind == HeadKind.Mlp && head.HiddenUnits == _units);
            if (!sameShape) throw new ArgumentException($"the start head ({head.Kind}, d = {head.Dimension}, units = {head.HiddenUnits}) does not match the network", nameof(head));
            head.W1.CopyTo(Parameters, 0);
            if (_units > 0)
            {
                head.B1.CopyTo(Parameters, B1);
                head.W2.CopyTo(Parameters, W2);
            }
            Parameters[Last] = (float)head.B2;
        }

        public TrainedHead ToHead(FeatureScaling scaling)
        {
            if (_units == 0)
                return TrainedHead.Linear(scaling, Parameters.AsSpan(0, _d).ToArray().Select(x => (double)x).ToArray(), Parameters[Last]);
            return TrainedHead.Mlp(scaling, Parameters.AsSpan(0, _units * _d).ToArray(), Parameters.AsSpan(B1, _units).ToArray(),
                Parameters.AsSpan(W2, _units).ToArray(), Parameters[Last], _activation);
        }

        /// <summary>
        /// Gradients of 1/2 sum_r w_r (V(z_r) - y_r)^2 / sum_r w_r over one batch into <see cref="Gradients"/>;
        /// returns the batch's weighted sum of squared errors.
        /// </summary>
        /// <param name="z">[rows, d] standardized rows of the batch.</param>
        public double Gradient(ReadOnlySpan<float> z, ReadOnlySpan<int> rows, RegressionData data)
        {
            Array.Clear(Gradients);
            double total = 0;
            foreach (int i in rows) total += data.Weight(i);
            if (total <= 0) return 0;
            double sse = 0;
            var p = Parameters;
            var g = Gradients;
            for (int r = 0; r < rows.Length; r++)
            {
                var zr = z.Slice(r * _d, _d);
                int i = rows[r];
                double w = data.Weight(i);
                if (_units == 0)
                {
                    double f = TensorPrimitives.Dot(zr, p.AsSpan(0, _d)) + p[Last];
                    double err = f - data.Targets[i];
                    sse += w * err * err;
                    float e = (float)(w * err / total);
                    TensorPrimitives.MultiplyAdd(zr, e, g.AsSpan(0, _d), g.AsSpan(0, _d));
                    g[Last] += e;
                    continue;
                }
                double v = p[Last];
                for (int j = 0; j < _units; j++)
                {
                    float a = TensorPrimitives.Dot(zr, p.AsSpan(j * _d, _d)) + p[B1 + j];
                    _pre[j] = a;
                    _post[j] = (float)Activations.Value(a, _activation);
                    v += p[W2 + j] * _post[j];
                }
                double error = v - data.Targets[i];
                sse += w * error * error;
                float eo = (float)(w * error / total);
                g[Last] += eo;
                TensorPrimitives.MultiplyAdd(_post.AsSpan(0, _units), eo, g.AsSpan(W2, _units), g.AsSpan(W2, _units));
                for (int j = 0; j < _units; j++)
                {
                    float delta = (float)(eo * p[W2 + j] * Activations.Derivative(_pre[j], _activation));
                    if (delta == 0f) continue;
                    g[B1 + j] += delta;
                    var gj = g.AsSpan(j * _d, _d);
                    TensorPrimitives.MultiplyAdd(zr, delta, gj, gj);
                }
            }
            return sse;
        }

        private static double Normal(Random random)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
    }

    /// <summary>Adam's moments and step counter.</summary>
    private sealed class AdamState(int count)
    {
        private readonly float[] _m = new float[count];
        private readonly float[] _v = new float[count];
        private readonly float[] _scratch = new float[count];
        private int _t;

        public void Step(Network net, double learningRate, double weightDecay)
        {
            _t++;
            var g = net.Gradients;
            var p = net.Parameters;
            // m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
            TensorPrimitives.Multiply(_m, (float)Beta1, _m);
            TensorPrimitives.MultiplyAdd(g, (float)(1 - Beta1), _m, _m);
            TensorPrimitives.Multiply(g, g, _scratch);
            TensorPrimitives.Multiply(_v, (float)Beta2, _v);
            TensorPrimitives.MultiplyAdd(_scratch, (float)(1 - Beta2), _v, _v);
            double c1 = 1 - Math.Pow(Beta1, _t), c2 = 1 - Math.Pow(Beta2, _t);
            float lr = (float)learningRate, decay = (float)(learningRate * weightDecay);
            for (int i = 0; i < p.Length; i++)
            {
                double mHat = _m[i] / c1, vHat = _v[i] / c2;
                float step = (float)(lr * mHat / (Math.Sqrt(vHat) + Epsilon));
                if (net.DecayMask[i]) step += decay * p[i];
                p[i] -= step;
            }
        }
    }
}
