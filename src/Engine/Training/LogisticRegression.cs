using System.Numerics.Tensors;

namespace Tilt.Engine.Training;

/// <summary>A fitted logistic model P(s = +1 | z) = sigmoid(z . w + b) over standardized features.</summary>
public sealed record LogisticSolution(double[] Weights, double Bias, double Lambda, int Iterations, double Objective)
{
    /// <summary>The logit z . w + b.</summary>
    public double Logit(ReadOnlySpan<float> z)
    {
        double s = Bias;
        for (int j = 0; j < Weights.Length; j++) s += Weights[j] * z[j];
        return s;
    }
}

/// <summary>
/// L2-regularized logistic regression, minimizing
/// (1 / sum_i c_i) sum_i c_i log(1 + exp(-s_i (z_i . w + b))) + (lambda / 2) ||w||^2 with labels s_i = +-1 and row
/// weights c_i, by L-BFGS with a backtracking (Armijo) line search in float64. The objective is strictly convex for
/// lambda > 0, so the solution is unique and the method converges from zero. Bradley-Terry [M20] is the special case
/// of rows z(chosen) - z(rejected), every label +1 and no intercept.
/// </summary>
public static class LogisticRegression
{
    /// <summary>Penalties tried when choosing lambda on held-out rows.</summary>
    public static IReadOnlyList<double> DefaultLambdas { get; } = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1];

    private const int History = 10;

    /// <param name="z">[rows, d] standardized features, row-major.</param>
    /// <param name="labels">[rows] +1 or -1.</param>
    /// <param name="weights">[rows] row weights, or empty for 1.</param>
    /// <param name="lambda">L2 penalty on w (not on b), >= 0.</param>
    /// <param name="intercept">Fit b; false keeps b = 0 (Bradley-Terry on differences).</param>
    public static LogisticSolution Fit(ReadOnlySpan<float> z, int d, ReadOnlySpan<double> labels, ReadOnlySpan<double> weights, double lambda, bool intercept,
        int maxIterations = 500, double tolerance = 1e-8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(d, 1);
        int n = labels.Length;
        if (z.Length != (long)n * d) throw new ArgumentException($"features hold {z.Length} values, expected {n} x {d}", nameof(z));
        if (!weights.IsEmpty && weights.Length != n) throw new ArgumentException($"{weights.Length} weights for {n} rows", nameof(weights));
        if (!(lambda >= 0) || !double.IsFinite(lambda)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "lambda must be finite and >= 0");
        if (n == 0) throw new TiltException("logistic regression needs at least one row");
        foreach (double label in labels)
            if (label is not (1.0 or -1.0)) throw new ArgumentException($"labels must be +1 or -1, got {label}", nameof(labels));

        var problem = new Problem(z.ToArray(), d, labels.ToArray(), weights.IsEmpty ? null : weights.ToArray(), lambda, intercept);
        int p = d + 1;
        var theta = new double[p];
        var gradient = new double[p];
        double f = problem.Evaluate(theta, gradient);
        var s = new double[History][];
        var y = new double[History][];
        var rho = new double[History];
        int stored = 0, next = 0, iteration = 0;
        var direction = new double[p];
        var trial = new double[p];
        var trialGradient = new double[p];
        var alpha = new double[History];

        for (iteration = 0; iteration < maxIterations; iteration++)
        {
            if (Math.Abs(TensorPrimitives.MaxMagnitude<double>(gradient)) < tolerance) break; // MaxMagnitude keeps the sign

            // Two-loop recursion: direction = -H g.
            gradient.CopyTo(direction, 0);
            for (int k = 0; k < stored; k++)
            {
                int i = (next - 1 - k + History) % History;
                alpha[i] = rho[i] * TensorPrimitives.Dot<double>(s[i], direction);
                TensorPrimitives.MultiplyAdd<double>(y[i], -alpha[i], direction, direction);
            }
            if (stored > 0)
            {
                int last = (next - 1 + History) % History;
                double gamma = TensorPrimitives.Dot<double>(s[last], y[last]) / TensorPrimitives.Dot<double>(y[last], y[last]);
                TensorPrimitives.Multiply<double>(direction, gamma, direction);
            }
            else
            {
                // First step: a unit-length move along the gradient.
                TensorPrimitives.Multiply<double>(direction, 1.0 / Math.Max(1e-12, TensorPrimitives.Norm<double>(gradient)), direction);
            }
            for (int k = stored - 1; k >= 0; k--)
            {
                int i = (next - 1 - k + History) % History;
                double beta = rho[i] * TensorPrimitives.Dot<double>(y[i], direction);
                TensorPrimitives.MultiplyAdd<double>(s[i], alpha[i] - beta, direction, direction);
            }
            TensorPrimitives.Negate<double>(direction, direction);
            double slope = TensorPrimitives.Dot<double>(gradient, direction);
            if (slope >= 0)
            {
                // Not a descent direction (curvature information went stale): restart from steepest descent.
                TensorPrimitives.Negate<double>(gradient, direction);
                slope = -TensorPrimitives.Dot<double>(gradient, gradient);
                stored = 0;
            }

            double step = 1.0, fTrial = double.NaN;
            bool accepted = false;
            for (int tries = 0; tries < 60; tries++)
            {
                TensorPrimitives.MultiplyAdd<double>(direction, step, theta, trial);
                fTrial = problem.Evaluate(trial, trialGradient);
                if (fTrial <= f + 1e-4 * step * slope) { accepted = true; break; }
                step *= 0.5;
            }
            if (!accepted) break; // no decrease possible at float64 precision: converged

            var sNew = s[next] ??= new double[p];
            var yNew = y[next] ??= new double[p];
            TensorPrimitives.Subtract<double>(trial, theta, sNew);
            TensorPrimitives.Subtract<double>(trialGradient, gradient, yNew);
            double sy = TensorPrimitives.Dot<double>(sNew, yNew);
            double decrease = f - fTrial;
            trial.CopyTo(theta, 0);
            trialGradient.CopyTo(gradient, 0);
            f = fTrial;
            if (sy > 1e-12)
            {
                rho[next] = 1.0 / sy;
                next = (next + 1) % History;
                stored = Math.Min(stored + 1, History);
            }
            if (decrease <= 1e-15 * Math.Max(1.0, Math.Abs(f))) { iteration++; break; }
        }
        return new LogisticSolution(theta.AsSpan(0, d).ToArray(), theta[d], lambda, iteration, f);
    }

    /// <summary>Weighted mean log-loss of a solution on rows (no penalty).</summary>
    public static double LogLoss(LogisticSolution solution, ReadOnlySpan<float> z, int d, ReadOnlySpan<double> labels, ReadOnlySpan<double> weights = default)
    {
        ArgumentNullException.ThrowIfNull(solution);
        double loss = 0, total = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            double c = weights.IsEmpty ? 1.0 : weights[i];
            loss += c * Softplus(-labels[i] * solution.Logit(z.Slice(i * d, d)));
            total += c;
        }
        return total > 0 ? loss / total : double.NaN;
    }

    /// <summary>log(1 + exp(x)) without overflow.</summary>
    internal static double Softplus(double x) => x > 0 ? x + Math.Log(1 + Math.Exp(-x)) : Math.Log(1 + Math.Exp(x));

    /// <summary>1 / (1 + exp(-x)) without overflow.</summary>
    internal static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    private sealed class Problem(float[] z, int d, double[] labels, double[]? weights, double lambda, bool intercept)
    {
        private readonly double _total = weights?.Sum() ?? labels.Length;

        /// <summary>Objective at theta = [w, b]; writes its gradient.</summary>
        public double Evaluate(double[] theta, double[] gradient)
        {
            Array.Clear(gradient);
            var w = theta.AsSpan(0, d);
            double b = intercept ? theta[d] : 0;
            var gw = new double[d];
            double loss = 0, gb = 0;
            for (int i = 0; i < labels.Length; i++)
            {
                var zi = z.AsSpan(i * d, d);
                // The margin in float64: float32 dot products would limit the gradient's precision to ~1e-7.
                double margin = b;
                for (int j = 0; j < d; j++) margin += w[j] * zi[j];
                margin *= labels[i];
                double c = (weights?[i] ?? 1.0) / _total;
                loss += c * Softplus(-margin);
                double coefficient = -c * labels[i] * Sigmoid(-margin);
                for (int j = 0; j < d; j++) gw[j] += coefficient * zi[j];
                gb += coefficient;
            }
            double penalty = 0.5 * lambda * TensorPrimitives.Dot<double>(w, w);
            for (int j = 0; j < d; j++) gradient[j] = gw[j] + lambda * w[j];
            gradient[d] = intercept ? gb : 0;
            return loss + penalty;
        }
    }
}
