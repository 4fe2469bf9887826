using System.Numerics.Tensors;

namespace Tilt.Engine.Training;

/// <summary>
/// The sufficient statistics of weighted least squares with an intercept: G = sum_i w_i [x_i, 1][x_i, 1]^T,
/// c = sum_i w_i y_i [x_i, 1], sum_i w_i y_i^2 and sum_i w_i, accumulated in float64. Ridge solutions for any
/// lambda and the mean squared error of any linear predictor on the accumulated rows follow from them without
/// another pass over the data, which is what makes choosing lambda on a held-out set cheap.
/// </summary>
/// <remarks>
/// Rows are buffered in blocks of <see cref="BlockRows"/> (column-major, scaled by sqrt(w)) and folded into G with
/// one SIMD dot product per pair of columns: (d+1)(d+2)/2 dot products of length 256 per block instead of a
/// rank-one update per row. Memory: (d+1)^2 doubles plus one block.
/// </remarks>
public sealed class NormalEquations
{
    /// <summary>Rows buffered before they are folded into G.</summary>
    public const int BlockRows = 256;

    private readonly int _d;           // features
    private readonly int _n;           // d + 1 (intercept column last)
    private readonly double[] _gram;   // [n, n] upper triangle filled on flush, mirrored on read
    private readonly double[] _xy;     // [n]
    private readonly double[] _block;  // [n + 1, BlockRows] columns: features, intercept, target (all times sqrt(w))
    private int _buffered;
    private double _yy;

    /// <param name="dimension">d, the number of features (the intercept is added).</param>
    public NormalEquations(int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        _d = dimension;
        _n = dimension + 1;
        _gram = new double[_n * _n];
        _xy = new double[_n];
        _block = new double[(_n + 1) * BlockRows];
    }

    /// <summary>d.</summary>
    public int Dimension => _d;

    /// <summary>Rows added.</summary>
    public long Rows { get; private set; }

    /// <summary>Sum of the row weights.</summary>
    public double WeightSum { get; private set; }

    /// <summary>Adds one row: features x [d], target y, weight w >= 0.</summary>
    public void Add(ReadOnlySpan<float> x, double y, double weight = 1.0)
    {
        if (x.Length != _d) throw new ArgumentException($"a row has {x.Length} features, expected {_d}", nameof(x));
        if (!(weight >= 0) || !double.IsFinite(weight)) throw new ArgumentOutOfRangeException(nameof(weight), weight, "row weights must be finite and >= 0");
        if (!double.IsFinite(y)) throw new ArgumentOutOfRangeException(nameof(y), y, "targets must be finite");
        double s = Math.Sqrt(weight);
        int r = _buffered;
        for (int j = 0; j < _d; j++) _block[j * BlockRows + r] = s * x[j];
        _block[_d * BlockRows + r] = s;
        _block[_n * BlockRows + r] = s * y;
        Rows++;
        WeightSum += weight;
        if (++_buffered == BlockRows) Flush();
    }

    /// <summary>Adds another accumulator's rows (same dimension).</summary>
    public void Add(NormalEquations other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other._d != _d) throw new ArgumentException($"dimensions differ: {other._d} vs {_d}", nameof(other));
        Flush();
        other.Flush();
        TensorPrimitives.Add(_gram, other._gram, _gram);
        TensorPrimitives.Add(_xy, other._xy, _xy);
        _yy += other._yy;
        Rows += other.Rows;
        WeightSum += other.WeightSum;
    }

    /// <summary>
    /// The ridge solution argmin sum_i w_i (x_i . w + b - y_i)^2 + lambda ||w||^2 (the intercept is not penalized),
    /// by Cholesky on the (d+1) x (d+1) normal equations in float64.
    /// </summary>
    /// <exception cref="TiltException">No rows, or the system is not positive definite (lambda = 0 with collinear features).</exception>
    public RidgeSolution Solve(double lambda)
    {
        if (!(lambda >= 0) || !double.IsFinite(lambda)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "lambda must be finite and >= 0");
        if (WeightSum <= 0) throw new TiltException("ridge regression needs at least one row with a positive weight");
        Flush();
        var a = Gram();
        for (int j = 0; j < _d; j++) a[j * _n + j] += lambda;
        if (!Cholesky.Factor(a, _n))
            throw new TiltException($"the normal equations are singular (lambda = {lambda:G3}): features are collinear; use a positive ridge penalty");
        var theta = (double[])_xy.Clone();
        Cholesky.Solve(a, _n, theta);
        return new RidgeSolution(theta.AsSpan(0, _d).ToArray(), theta[_d], lambda);
    }

    /// <summary>Weighted mean squared error of x . w + b over the accumulated rows, from the statistics alone.</summary>
    public double MeanSquaredError(ReadOnlySpan<double> weights, double bias)
    {
        if (weights.Length != _d) throw new ArgumentException($"{weights.Length} weights for {_d} features", nameof(weights));
        if (WeightSum <= 0) return double.NaN;
        Flush();
        var g = Gram();
        Span<double> theta = new double[_n];
        weights.CopyTo(theta);
        theta[_d] = bias;
        double quadratic = 0;
        for (int i = 0; i < _n; i++) quadratic += theta[i] * TensorPrimitives.Dot<double>(g.AsSpan(i * _n, _n), theta);
        double sse = quadratic - 2 * TensorPrimitives.Dot<double>(theta, _xy) + _yy;
        return Math.Max(0, sse) / WeightSum;
    }

    /// <summary>Weighted variance of the targets (the MSE of predicting their mean).</summary>
    public double TargetVariance()
    {
        if (WeightSum <= 0) return double.NaN;
        Flush();
        double mean = _xy[_d] / WeightSum;
        return Math.Max(0, _yy / WeightSum - mean * mean);
    }

    /// <summary>The full symmetric G (a copy).</summary>
    private double[] Gram()
    {
        var g = (double[])_gram.Clone();
        for (int i = 0; i < _n; i++)
            for (int j = 0; j < i; j++)
                g[i * _n + j] = g[j * _n + i];
        return g;
    }

    private void Flush()
    {
        int m = _buffered;
        if (m == 0) return;
        // [column, row] views of the block; only the first m rows are live.
        for (int i = 0; i < _n; i++)
        {
            var ci = _block.AsSpan(i * BlockRows, m);
            for (int j = i; j < _n; j++) _gram[i * _n + j] += TensorPrimitives.Dot<double>(ci, _block.AsSpan(j * BlockRows, m));
            _xy[i] += TensorPrimitives.Dot<double>(ci, _block.AsSpan(_n * BlockRows, m));
        }
        var y = _block.AsSpan(_n * BlockRows, m);
        _yy += TensorPrimitives.Dot<double>(y, y);
        _buffered = 0;
    }
}

/// <summary>A linear predictor x . w + b found by ridge regression, with the lambda it was solved with.</summary>
public sealed record RidgeSolution(double[] Weights, double Bias, double Lambda)
{
    /// <summary>x . w + b in float64.</summary>
    public double Predict(ReadOnlySpan<float> x)
    {
        double s = Bias;
        for (int j = 0; j < Weights.Length; j++) s += Weights[j] * x[j];
        return s;
    }
}

/// <summary>Ridge regression in closed form, with the penalty chosen on held-out rows.</summary>
public static class RidgeRegression
{
    /// <summary>
    /// Penalties tried by <see cref="SelectLambda"/>, relative to the training weight: lambda = alpha * sum_i w_i.
    /// On standardized features every diagonal entry of X^T W X is about sum_i w_i, so alpha is the penalty as a
    /// fraction of the data's own curvature.
    /// </summary>
    public static IReadOnlyList<double> DefaultAlphas { get; } = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0];

    /// <summary>
    /// argmin sum_i w_i (x_i . w + b - y_i)^2 + lambda ||w||^2 over rows of <paramref name="features"/>
    /// [rows, d] row-major; weights default to 1.
    /// </summary>
    public static RidgeSolution Fit(ReadOnlySpan<float> features, int rows, int d, ReadOnlySpan<double> targets, double lambda, ReadOnlySpan<double> weights = default)
    {
        if (features.Length != (long)rows * d) throw new ArgumentException($"features hold {features.Length} values, expected {rows} x {d}", nameof(features));
        if (targets.Length != rows) throw new ArgumentException($"{targets.Length} targets for {rows} rows", nameof(targets));
        if (!weights.IsEmpty && weights.Length != rows) throw new ArgumentException($"{weights.Length} weights for {rows} rows", nameof(weights));
        var equations = new NormalEquations(d);
        for (int i = 0; i < rows; i++) equations.Add(features.Slice(i * d, d), targets[i], weights.IsEmpty ? 1.0 : weights[i]);
        return equations.Solve(lambda);
    }

    /// <summary>
    /// Solves on <paramref name="fit"/> for each alpha (lambda = alpha * fit.WeightSum) and returns the alpha whose
    /// solution has the lowest mean squared error on <paramref name="validation"/>, with every alpha's error.
    /// </summary>
    public static (double Alpha, double[] ValidationMse) SelectLambda(NormalEquations fit, NormalEquations validation, IReadOnlyList<double>? alphas = null)
    {
        ArgumentNullException.ThrowIfNull(fit);
        ArgumentNullException.ThrowIfNull(validation);
        alphas ??= DefaultAlphas;
        if (alphas.Count == 0) throw new ArgumentException("at least one alpha is needed", nameof(alphas));
        var errors = new double[alphas.Count];
        int best = -1;
        for (int i = 0; i < alphas.Count; i++)
        {
            if (!(alphas[i] > 0) || !double.IsFinite(alphas[i])) throw new ArgumentOutOfRangeException(nameof(alphas), alphas[i], "alphas must be finite and > 0");
            var s = fit.Solve(alphas[i] * fit.WeightSum);
            errors[i] = validation.MeanSquaredError(s.Weights, s.Bias);
            if (best < 0 || errors[i] < errors[best]) best = i;
        }
        return (alphas[best], errors);
    }
}
