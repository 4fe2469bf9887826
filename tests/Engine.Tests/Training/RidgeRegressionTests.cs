using Tilt.Engine.Training;

namespace Tilt.Engine.Tests.Training;

public sealed class RidgeRegressionTests
{
    /// <summary>
    /// Rows that straddle the accumulator's 256-row blocks, random row weights, features with different scales and
    /// an offset (so the unpenalized intercept matters).
    /// </summary>
    private static (float[] X, double[] Y, double[] W) Data(int rows, int d, int seed)
    {
        var random = new Random(seed);
        var x = new float[rows * d];
        var y = new double[rows];
        var w = new double[rows];
        var truth = Enumerable.Range(0, d).Select(_ => random.NextDouble() * 2 - 1).ToArray();
        for (int i = 0; i < rows; i++)
        {
            double s = 0.7;
            for (int j = 0; j < d; j++)
            {
                x[i * d + j] = (float)((random.NextDouble() * 2 - 1) * (1 + j) + 0.5 * j);
                s += truth[j] * x[i * d + j];
            }
            y[i] = s + 0.3 * (random.NextDouble() - 0.5);
            w[i] = 0.1 + random.NextDouble();
        }
        return (x, y, w);
    }

    /// <summary>The normal equations (X^T W X + lambda diag(1, ..., 1, 0)) theta = X^T W y, by Gauss-Jordan with partial pivoting.</summary>
    private static double[] Reference(float[] x, double[] y, double[] w, int d, double lambda)
    {
        int n = d + 1;
        var a = new double[n, n + 1];
        for (int i = 0; i < y.Length; i++)
        {
            for (int r = 0; r < n; r++)
            {
                double xr = r < d ? x[i * d + r] : 1.0;
                for (int c = 0; c < n; c++) a[r, c] += w[i] * xr * (c < d ? x[i * d + c] : 1.0);
                a[r, n] += w[i] * xr * y[i];
            }
        }
        for (int r = 0; r < d; r++) a[r, r] += lambda;
        for (int col = 0; col < n; col++)
        {
            int pivot = col;
            for (int r = col + 1; r < n; r++) if (Math.Abs(a[r, col]) > Math.Abs(a[pivot, col])) pivot = r;
            for (int c = 0; c <= n; c++) (a[col, c], a[pivot, c]) = (a[pivot, c], a[col, c]);
            for (int r = 0; r < n; r++)
            {
                if (r == col) continue;
                double f = a[r, col] / a[col, col];
                for (int c = col; c <= n; c++) a[r, c] -= f * a[col, c];
            }
        }
        return Enumerable.Range(0, n).Select(r => a[r, n] / a[r, r]).ToArray();
    }

    [Theory]
    [InlineData(1, 1, 0.0)]
    [InlineData(255, 3, 0.0)]
    [InlineData(257, 7, 1e-3)]
    [InlineData(1000, 17, 0.5)]
    [InlineData(600, 64, 10.0)]
    public void RidgeSolutionEqualsTheFloat64NormalEquationReference(int rows, int d, double lambda)
    {
        var (x, y, w) = Data(rows, d, seed: rows + d);
        if (rows <= d) lambda = Math.Max(lambda, 1e-3); // an exactly determined system needs no penalty, an underdetermined one does
        var solution = RidgeRegression.Fit(x, rows, d, y, lambda, w);
        var reference = Reference(x, y, w, d, lambda);
        // Both solve the same float64 system; the difference is rounding, amplified by its condition number.
        for (int j = 0; j < d; j++) Assert.Equal(reference[j], solution.Weights[j], 1e-7 * (1 + Math.Abs(reference[j])));
        Assert.Equal(reference[d], solution.Bias, 1e-7 * (1 + Math.Abs(reference[d])));
    }

    [Fact]
    public void MeanSquaredErrorFromTheStatisticsEqualsTheDirectOne()
    {
        var (x, y, w) = Data(700, 5, 3);
        var equations = new NormalEquations(5);
        for (int i = 0; i < 700; i++) equations.Add(x.AsSpan(i * 5, 5), y[i], w[i]);
        var s = equations.Solve(0.1);
        double sse = 0;
        for (int i = 0; i < 700; i++) sse += w[i] * Math.Pow(s.Predict(x.AsSpan(i * 5, 5)) - y[i], 2);
        Assert.Equal(sse / w.Sum(), equations.MeanSquaredError(s.Weights, s.Bias), 1e-9);
        double mean = y.Zip(w).Sum(p => p.First * p.Second) / w.Sum();
        Assert.Equal(y.Zip(w).Sum(p => p.Second * Math.Pow(p.First - mean, 2)) / w.Sum(), equations.TargetVariance(), 1e-9);
    }

    [Fact]
    public void MergedAccumulatorsEqualOneAccumulator()
    {
        var (x, y, w) = Data(900, 6, 5);
        var all = new NormalEquations(6);
        var a = new NormalEquations(6);
        var b = new NormalEquations(6);
        for (int i = 0; i < 900; i++)
        {
            all.Add(x.AsSpan(i * 6, 6), y[i], w[i]);
            (i % 3 == 0 ? a : b).Add(x.AsSpan(i * 6, 6), y[i], w[i]);
        }
        a.Add(b);
        var s1 = all.Solve(0.01);
        var s2 = a.Solve(0.01);
        for (int j = 0; j < 6; j++) Assert.Equal(s1.Weights[j], s2.Weights[j], 1e-9);
        Assert.Equal(900, a.Rows);
    }

    [Fact]
    public void HeldOutSelectionPrefersAStrongPenaltyWhenTheTargetsArePureNoise()
    {
        var random = new Random(11);
        int d = 40;
        var fit = new NormalEquations(d);
        var validation = new NormalEquations(d);
        var row = new float[d];
        for (int i = 0; i < 300; i++)
        {
            for (int j = 0; j < d; j++) row[j] = (float)(random.NextDouble() * 2 - 1);
            (i < 200 ? fit : validation).Add(row, random.NextDouble());
        }
        var (alpha, errors) = RidgeRegression.SelectLambda(fit, validation);
        Assert.Equal(RidgeRegression.DefaultAlphas.Count, errors.Length);
        Assert.True(alpha >= 0.1, $"alpha {alpha}: with 40 noise features and 200 rows, little penalty overfits");
    }

    [Fact]
    public void CollinearFeaturesWithoutAPenaltyAreAClearError()
    {
        var x = new float[] { 1, 2, 2, 4, 3, 6, 4, 8 }; // column 2 = 2 x column 1
        var e = Assert.Throws<TiltException>(() => RidgeRegression.Fit(x, 4, 2, [1, 2, 3, 4], 0));
        Assert.Contains("collinear", e.Message);
        var s = RidgeRegression.Fit(x, 4, 2, [1, 2, 3, 4], 1e-6);
        Assert.True(s.Weights.All(double.IsFinite));
    }
}
