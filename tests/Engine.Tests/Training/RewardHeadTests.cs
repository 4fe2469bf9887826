using Tilt.Engine.Training;

namespace Tilt.Engine.Tests.Training;

public sealed class RewardHeadTests
{
    private const int D = 10;

    private static double Normal(Random random)
    {
        double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>A known linear reward r(x) = w* . x with ||w*|| = 1.5, features N(0, diag(scales^2)) + offset.</summary>
    private static double[] Truth()
    {
        var random = new Random(100);
        var w = Enumerable.Range(0, D).Select(_ => Normal(random)).ToArray();
        double norm = Math.Sqrt(w.Sum(v => v * v));
        return w.Select(v => 1.5 * v / norm).ToArray();
    }

    private static float[] Features(int rows, Random random)
    {
        var x = new float[rows * D];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(Normal(random) * (1 + i % D % 3) + 2.0);
        return x;
    }

    private static double Dot(double[] w, ReadOnlySpan<float> x)
    {
        double s = 0;
        for (int j = 0; j < w.Length; j++) s += w[j] * x[j];
        return s;
    }

    /// <summary>The head's direction in raw feature space: w / std (the normalization folded in).</summary>
    private static double Cosine(TrainedHead head, double[] truth)
    {
        var raw = Enumerable.Range(0, D).Select(j => head.W1[j] / (double)head.Scaling.Std[j]).ToArray();
        return raw.Zip(truth).Sum(p => p.First * p.Second) / Math.Sqrt(raw.Sum(v => v * v) * truth.Sum(v => v * v));
    }

    [Fact]
    public void BradleyTerryRecoversTheDirectionOfAKnownLinearRewardAndReachesTheBayesAccuracy()
    {
        var truth = Truth();
        var random = new Random(1);
        int n = 5000;
        var a = Features(n, random);
        var b = Features(n, random);
        var chosen = new float[n * D];
        var rejected = new float[n * D];
        var bayesCorrect = new bool[n];
        for (int i = 0; i < n; i++)
        {
            // Labels drawn from the Bradley-Terry model itself: P(a preferred) = sigmoid(r(a) - r(b)) [M20].
            double margin = Dot(truth, a.AsSpan(i * D, D)) - Dot(truth, b.AsSpan(i * D, D));
            bool aWins = random.NextDouble() < 1 / (1 + Math.Exp(-margin));
            (aWins ? a : b).AsSpan(i * D, D).CopyTo(chosen.AsSpan(i * D, D));
            (aWins ? b : a).AsSpan(i * D, D).CopyTo(rejected.AsSpan(i * D, D));
            bayesCorrect[i] = aWins == margin > 0; // the Bayes rule picks the higher true reward
        }
        var options = new RewardTrainingOptions { Seed = 3 };
        var (head, report) = RewardTrainer.FitBradleyTerry(new DenseFeatureRows(chosen, D), new DenseFeatureRows(rejected, D), options);

        double cosine = Cosine(head, truth);
        Assert.True(cosine > 0.95, $"cosine {cosine:F4}");
        Assert.Equal(1000, report.HeldOut.Examples);

        // Bayes accuracy on the same held-out pairs (the split is the trainer's, reproduced by its seed): the trained
        // head must come within 2.5 points (about 1.6 standard errors of an accuracy over 1000 pairs, plus estimation error).
        var order = Enumerable.Range(0, n).ToArray();
        new Random(unchecked((int)options.Seed) ^ 0x2e3a).Shuffle(order);
        double bayes = order[..1000].Average(i => bayesCorrect[i] ? 1.0 : 0.0);
        Assert.True(Math.Abs(report.HeldOut.Accuracy - bayes) < 0.025, $"held-out accuracy {report.HeldOut.Accuracy:F3} vs Bayes {bayes:F3}");
        Assert.True(report.HeldOut.Accuracy > 0.7, $"accuracy {report.HeldOut.Accuracy:F3}");
        Assert.Equal(0.0, head.B2);
    }

    [Fact]
    public void TheClassifierRecoversALogisticTruthWithAnIntercept()
    {
        var truth = Truth();
        var random = new Random(2);
        int n = 5000;
        var x = Features(n, random);
        double offset = -Dot(truth, Enumerable.Repeat(2f, D).ToArray()) + 0.7;
        var labels = new bool[n];
        for (int i = 0; i < n; i++) labels[i] = random.NextDouble() < 1 / (1 + Math.Exp(-(Dot(truth, x.AsSpan(i * D, D)) + offset)));
        var (head, report) = RewardTrainer.FitClassifier(new DenseFeatureRows(x, D), labels, new RewardTrainingOptions { Seed = 4 });
        Assert.True(Cosine(head, truth) > 0.95, $"cosine {Cosine(head, truth):F4}");
        Assert.True(report.HeldOut.Accuracy > 0.75, $"accuracy {report.HeldOut.Accuracy:F3}");
        Assert.InRange(report.HeldOut.PositiveRate, 0.3, 0.8);
        // The logit is calibrated: its intercept in raw space is near the truth's.
        double rawBias = head.B2 - Enumerable.Range(0, D).Sum(j => head.W1[j] * head.Scaling.Mean[j] / head.Scaling.Std[j]);
        Assert.InRange(rawBias, offset - 0.5, offset + 0.5);
    }

    [Fact]
    public void LogisticRegressionStopsAtTheOptimum()
    {
        // Optimality: the gradient of the penalized objective vanishes at the solution (checked by finite differences).
        var random = new Random(5);
        int n = 400, d = 3;
        var z = new float[n * d];
        var s = new double[n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < d; j++) z[i * d + j] = (float)Normal(random);
            s[i] = random.NextDouble() < 1 / (1 + Math.Exp(-(z[i * d] - 0.5 * z[i * d + 1] + 0.3))) ? 1 : -1;
        }
        const double lambda = 0.01;
        var solution = LogisticRegression.Fit(z, d, s, default, lambda, intercept: true);
        double Objective(double[] w, double b)
        {
            var trial = new LogisticSolution(w, b, lambda, 0, 0);
            return LogisticRegression.LogLoss(trial, z, d, s) + 0.5 * lambda * w.Sum(v => v * v);
        }
        const double h = 1e-5;
        for (int j = 0; j <= d; j++)
        {
            var plus = (double[])solution.Weights.Clone();
            var minus = (double[])solution.Weights.Clone();
            double bp = solution.Bias, bm = solution.Bias;
            if (j < d) { plus[j] += h; minus[j] -= h; } else { bp += h; bm -= h; }
            double gradient = (Objective(plus, bp) - Objective(minus, bm)) / (2 * h);
            Assert.True(Math.Abs(gradient) < 1e-6, $"gradient {gradient:G3} in coordinate {j}");
        }
    }
}
