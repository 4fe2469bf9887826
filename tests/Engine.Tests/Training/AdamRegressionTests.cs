using Tilt.Engine.Heads;
using Tilt.Engine.Training;

namespace Tilt.Engine.Tests.Training;

public sealed class AdamRegressionTests
{
    private const int D = 8;
    private const double NoiseStd = 0.1;

    /// <summary>y = x . w* + 0.5 + N(0, 0.1^2), x uniform with uneven scales: a known linear truth with noise variance 0.01.</summary>
    private static RegressionData Synthetic(int rows, int seed)
    {
        var random = new Random(seed);
        var truth = new[] { 0.8, -0.5, 0.3, 0.0, 1.1, -0.9, 0.2, 0.4 };
        var x = new float[rows * D];
        var y = new double[rows];
        for (int i = 0; i < rows; i++)
        {
            double s = 0.5;
            for (int j = 0; j < D; j++)
            {
                x[i * D + j] = (float)((random.NextDouble() * 2 - 1) * (j % 3 + 1));
                s += truth[j] * x[i * D + j];
            }
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            y[i] = s + NoiseStd * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
        return new RegressionData(new DenseFeatureRows(x, D), y);
    }

    private static FeatureScaling Scaling(RegressionData data)
    {
        var b = new FeatureScaling.Builder(D);
        for (int i = 0; i < data.Count; i++) b.Add(data.Rows.Row(i));
        return b.Build();
    }

    private static double RidgeTestMse(RegressionData train, RegressionData test, FeatureScaling scaling)
    {
        var equations = new NormalEquations(D);
        var z = new float[D];
        for (int i = 0; i < train.Count; i++)
        {
            scaling.Apply(train.Rows.Row(i), z);
            equations.Add(z, train.Targets[i]);
        }
        var s = equations.Solve(1e-6 * train.Count);
        return test.MeanSquaredError(TrainedHead.Linear(scaling, s.Weights, s.Bias));
    }

    [Fact]
    public void AdamLinearAndTwoLayerHeadsReachTheRidgeLossOnALinearTruth()
    {
        var train = Synthetic(4000, 1);
        var validation = Synthetic(1000, 2);
        var test = Synthetic(2000, 3);
        var scaling = Scaling(train);
        double ridge = RidgeTestMse(train, test, scaling);
        // The closed form sits at the noise floor (0.01) up to estimation error.
        Assert.InRange(ridge, 0.008, 0.012);

        var linear = AdamRegression.Fit(train, scaling, new AdamOptions { HiddenUnits = 0, Epochs = 40, BatchSize = 64, LearningRate = 1e-2, Seed = 7 }, validation);
        var mlp = AdamRegression.Fit(train, scaling, new AdamOptions { HiddenUnits = 16, Epochs = 40, BatchSize = 64, LearningRate = 1e-2, Seed = 7 }, validation);
        var gelu = AdamRegression.Fit(train, scaling, new AdamOptions { HiddenUnits = 16, Epochs = 40, BatchSize = 64, LearningRate = 1e-2, Activation = Tilt.Kernels.HeadActivation.Gelu, Seed = 7 }, validation);
        Assert.Equal(HeadKind.Linear, linear.Head.Kind);
        Assert.Equal(HeadKind.Mlp, mlp.Head.Kind);
        // Tolerances: SGD noise at the last steps (linear: 5%), and the two-layer head's extra capacity fitting
        // the noise of 4000 rows plus its harder optimization (15%).
        Assert.True(test.MeanSquaredError(linear.Head) <= ridge * 1.05, $"linear Adam {test.MeanSquaredError(linear.Head):G4} vs ridge {ridge:G4}");
        Assert.True(test.MeanSquaredError(mlp.Head) <= ridge * 1.15, $"MLP (ReLU) {test.MeanSquaredError(mlp.Head):G4} vs ridge {ridge:G4}");
        Assert.True(test.MeanSquaredError(gelu.Head) <= ridge * 1.15, $"MLP (GELU) {test.MeanSquaredError(gelu.Head):G4} vs ridge {ridge:G4}");
    }

    [Fact]
    public void TheSameSeedGivesTheSameHead()
    {
        var train = Synthetic(600, 4);
        var scaling = Scaling(train);
        var options = new AdamOptions { HiddenUnits = 4, Epochs = 3, Seed = 9 };
        var a = AdamRegression.Fit(train, scaling, options);
        var b = AdamRegression.Fit(train, scaling, options);
        Assert.Equal(a.Head.W1, b.Head.W1);
        Assert.Equal(a.Head.B2, b.Head.B2);
        var c = AdamRegression.Fit(train, scaling, options with { Seed = 10 });
        Assert.NotEqual(a.Head.W1, c.Head.W1);
    }

    [Fact]
    public void BadSettingsAreNamed()
    {
        Assert.Contains("learning rate", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamOptions { LearningRate = 0 }).Message);
        Assert.Contains("epochs", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamOptions { Epochs = 0 }).Message);
        Assert.Contains("targets", Assert.Throws<ArgumentException>(() => new RegressionData(new DenseFeatureRows(new float[4], 2), [1.0])).Message);
    }
}
