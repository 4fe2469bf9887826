using System.Diagnostics;
using System.Text.Json;
using Tilt.Engine.Heads;
using Tilt.Engine.Models;

namespace Tilt.Engine.Training;

/// <summary>How a reward head is trained.</summary>
public enum RewardMethod
{
    /// <summary>Bradley-Terry on preference pairs [M20]: P(chosen preferred) = sigmoid(r(chosen) - r(rejected)).</summary>
    BradleyTerry,

    /// <summary>Logistic classifier on labeled texts [M20]: r = log-odds of the positive label.</summary>
    Classifier,
}

/// <summary>Settings of <see cref="RewardTrainer"/>.</summary>
public sealed record RewardTrainingOptions
{
    /// <summary>Last hidden state (usable by every strategy) or mean over the text. Defaults to last.</summary>
    public TextFeature Feature { get; init; } = TextFeature.Last;

    /// <summary>Fraction of the examples held out for the report. 0..0.9. Defaults to 0.2.</summary>
    public double HeldOutFraction { get; init => field = Fraction(value, nameof(HeldOutFraction)); } = 0.2;

    /// <summary>Fraction of the rest used to choose the L2 penalty. 0..0.9. Defaults to 0.2.</summary>
    public double ValidationFraction { get; init => field = Fraction(value, nameof(ValidationFraction)); } = 0.2;

    /// <summary>
    /// L2 penalty on the standardized weights (objective: mean log-loss + lambda/2 ||w||^2); null chooses it from
    /// <see cref="Lambdas"/> by validation log-loss (1e-3 without validation examples).
    /// </summary>
    public double? Lambda { get; init => field = value is null || (value >= 0 && double.IsFinite(value.Value)) ? value : throw new ArgumentOutOfRangeException(nameof(Lambda), value, "lambda must be finite and >= 0"); }

    /// <summary>Candidate penalties. Defaults to <see cref="LogisticRegression.DefaultLambdas"/>.</summary>
    public IReadOnlyList<double> Lambdas { get; init; } = LogisticRegression.DefaultLambdas;

    /// <summary>Seed of the split. Defaults to 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>Texts decoded together when computing features (1..256). Defaults to 128.</summary>
    public int BatchSize { get; init => field = SessionOptions.CheckSequences(value, nameof(BatchSize), "the batch size"); } = 128;

    /// <summary>CPU threads for llama.cpp. Defaults to null (its choice).</summary>
    public int? Threads { get; init; }

    /// <summary>KV cache type of the feature pass. Defaults to F16.</summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F16;

    private static double Fraction(double value, string name) =>
        value is >= 0 and <= 0.9 ? value : throw new ArgumentOutOfRangeException(name, value, $"{name} must be between 0 and 0.9, got {value}");
}

/// <summary>
/// Accuracy on examples the head was not trained on. Bradley-Terry: the fraction of pairs with r(chosen) &gt;
/// r(rejected) (ties count 1/2) and the mean of -log sigmoid(r(chosen) - r(rejected)). Classifier: the fraction with
/// sign(r) = label and the mean log-loss; <see cref="PositiveRate"/> is the share of positive labels (the accuracy of
/// always guessing the majority is max(rate, 1 - rate)).
/// </summary>
public sealed record RewardHeldOutReport(int Examples, double Accuracy, double LogLoss, double PositiveRate);

/// <summary>What a reward training run did and how well the head ranks.</summary>
public sealed record RewardTrainingReport
{
    public required RewardMethod Method { get; init; }
    public required TextFeature Feature { get; init; }
    public required int TrainExamples { get; init; }
    public required int ValidationExamples { get; init; }
    public required double Lambda { get; init; }
    public required RewardHeldOutReport Training { get; init; }
    public required RewardHeldOutReport HeldOut { get; init; }
    public int Iterations { get; init; }
    public TimeSpan Elapsed { get; init; }
}

/// <summary>A trained reward head with its file (null from the feature-level methods) and report.</summary>
public sealed record RewardTrainingResult(TrainedHead Head, HeadFile? File, RewardTrainingReport Report);

/// <summary>
/// Trains reward heads on the model's hidden states (issue step 4): Bradley-Terry from preference pairs and a binary
/// classifier from labeled texts, both logistic regressions with an L2 penalty (chosen on validation examples) on
/// standardized features, solved by L-BFGS in C#. The head is linear: r = w . (h - mean) / std + b. For
/// Bradley-Terry b cancels in every comparison and is set to 0, so the mean reward over the training texts is 0.
/// </summary>
public sealed class RewardTrainer
{
    private readonly ILanguageModel _model;

    public RewardTrainer(ILanguageModel model) => _model = model ?? throw new ArgumentNullException(nameof(model));

    /// <summary>Features of every chosen and rejected text, then <see cref="FitBradleyTerry"/>; the head file records the model.</summary>
    public RewardTrainingResult TrainBradleyTerry(IReadOnlyList<PreferencePair> pairs, RewardTrainingOptions options, string? source = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(options);
        if (pairs.Count < 2) throw new TiltException($"Bradley-Terry training needs at least 2 pairs, got {pairs.Count}");
        var clock = Stopwatch.StartNew();
        var texts = pairs.Select(p => (p.Prompt, p.Chosen)).Concat(pairs.Select(p => (p.Prompt, p.Rejected))).ToArray();
        var features = Featurizer(options).Featurize(texts, progress, cancellationToken);
        int d = _model.Info.HiddenSize, n = pairs.Count;
        var chosen = new DenseFeatureRows(features.AsMemory(0, n * d), d);
        var rejected = new DenseFeatureRows(features.AsMemory(n * d, n * d), d);
        var (head, report) = FitBradleyTerry(chosen, rejected, options, cancellationToken);
        report = report with { Elapsed = clock.Elapsed };
        return new RewardTrainingResult(head, ToFile(head, report, source, n), report);
    }

    /// <summary>Features of every text, then <see cref="FitClassifier"/>; the head file records the model.</summary>
    public RewardTrainingResult TrainClassifier(IReadOnlyList<LabeledText> examples, RewardTrainingOptions options, string? source = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(options);
        if (examples.Count < 2) throw new TiltException($"classifier training needs at least 2 examples, got {examples.Count}");
        var clock = Stopwatch.StartNew();
        var features = Featurizer(options).Featurize(examples.Select(e => (e.Prompt, e.Text)).ToArray(), progress, cancellationToken);
        var rows = new DenseFeatureRows(features, _model.Info.HiddenSize);
        var (head, report) = FitClassifier(rows, examples.Select(e => e.Label).ToArray(), options, cancellationToken);
        report = report with { Elapsed = clock.Elapsed };
        return new RewardTrainingResult(head, ToFile(head, report, source, examples.Count), report);
    }

    /// <summary>Bradley-Terry on given features: row i of <paramref name="chosen"/> was preferred over row i of <paramref name="rejected"/>.</summary>
    public static (TrainedHead Head, RewardTrainingReport Report) FitBradleyTerry(IFeatureRows chosen, IFeatureRows rejected, RewardTrainingOptions options,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chosen);
        ArgumentNullException.ThrowIfNull(rejected);
        ArgumentNullException.ThrowIfNull(options);
        if (chosen.Count != rejected.Count || chosen.Dimension != rejected.Dimension)
            throw new ArgumentException($"chosen has {chosen.Count} rows of {chosen.Dimension}, rejected {rejected.Count} of {rejected.Dimension}");
        int d = chosen.Dimension;
        var (fit, validation, heldOut) = Split(chosen.Count, options);
        var builder = new FeatureScaling.Builder(d);
        foreach (int i in fit.Concat(validation))
        {
            builder.Add(chosen.Row(i));
            builder.Add(rejected.Row(i));
        }
        var scaling = builder.Build();

        // Rows z(chosen) - z(rejected) = (h(chosen) - h(rejected)) / std, every label +1: the mean cancels.
        float[] Differences(int[] which)
        {
            var z = new float[which.Length * d];
            for (int r = 0; r < which.Length; r++)
            {
                var c = chosen.Row(which[r]);
                var x = rejected.Row(which[r]);
                for (int j = 0; j < d; j++) z[r * d + j] = (c[j] - x[j]) / scaling.Std[j];
            }
            return z;
        }
        cancellationToken.ThrowIfCancellationRequested();
        var solution = FitLogistic(Differences(fit), Ones(fit.Length), Differences(validation), Ones(validation.Length), d, intercept: false, options);
        var head = TrainedHead.Linear(scaling, solution.Weights, 0.0);
        return (head, Report(RewardMethod.BradleyTerry, options, fit, validation, heldOut, solution, rows => PairAccuracy(head, chosen, rejected, rows)));
    }

    /// <summary>Logistic classifier on given features; the head's value is the log-odds of the positive label.</summary>
    public static (TrainedHead Head, RewardTrainingReport Report) FitClassifier(IFeatureRows features, IReadOnlyList<bool> labels, RewardTrainingOptions options,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(options);
        if (labels.Count != features.Count) throw new ArgumentException($"{labels.Count} labels for {features.Count} rows", nameof(labels));
        int d = features.Dimension;
        var (fit, validation, heldOut) = Split(features.Count, options);
        var builder = new FeatureScaling.Builder(d);
        foreach (int i in fit.Concat(validation)) builder.Add(features.Row(i));
        var scaling = builder.Build();

        float[] Standardized(int[] which)
        {
            var z = new float[which.Length * d];
            for (int r = 0; r < which.Length; r++) scaling.Apply(features.Row(which[r]), z.AsSpan(r * d, d));
            return z;
        }
        double[] Signs(int[] which) => which.Select(i => labels[i] ? 1.0 : -1.0).ToArray();
        cancellationToken.ThrowIfCancellationRequested();
        var solution = FitLogistic(Standardized(fit), Signs(fit), Standardized(validation), Signs(validation), d, intercept: true, options);
        var head = TrainedHead.Linear(scaling, solution.Weights, solution.Bias);
        return (head, Report(RewardMethod.Classifier, options, fit, validation, heldOut, solution, rows => ClassifierAccuracy(head, features, labels, rows)));
    }

    /// <summary>Chooses lambda on the validation rows (unless fixed), then refits on fit + validation rows.</summary>
    /// <summary>The report of a fitted head: its accuracy on the rows it was fitted on (fit and validation) and on the held-out rows.</summary>
    private static RewardTrainingReport Report(RewardMethod method, RewardTrainingOptions options, int[] fit, int[] validation, int[] heldOut, LogisticSolution solution,
        Func<int[], RewardHeldOutReport> accuracy) => new()
    {
        Method = method,
        Feature = options.Feature,
        TrainExamples = fit.Length,
        ValidationExamples = validation.Length,
        Lambda = solution.Lambda,
        Iterations = solution.Iterations,
        Training = accuracy(fit.Concat(validation).ToArray()),
        HeldOut = accuracy(heldOut),
    };

    private static LogisticSolution FitLogistic(float[] fitZ, double[] fitLabels, float[] validationZ, double[] validationLabels, int d, bool intercept, RewardTrainingOptions options)
    {
        if (fitLabels.Length == 0) throw new TiltException("no training examples left after the held-out split");
        double lambda = options.Lambda ?? 1e-3;
        if (options.Lambda is null && validationLabels.Length > 0)
        {
            double best = double.PositiveInfinity;
            foreach (double candidate in options.Lambdas)
            {
                var s = LogisticRegression.Fit(fitZ, d, fitLabels, default, candidate, intercept);
                double loss = LogisticRegression.LogLoss(s, validationZ, d, validationLabels);
                if (loss < best)
                {
                    best = loss;
                    lambda = candidate;
                }
            }
        }
        return LogisticRegression.Fit([.. fitZ, .. validationZ], d, [.. fitLabels, .. validationLabels], default, lambda, intercept);
    }

    private static RewardHeldOutReport PairAccuracy(TrainedHead head, IFeatureRows chosen, IFeatureRows rejected, int[] which)
    {
        var scratch = new float[head.ScratchSize];
        double correct = 0, loss = 0;
        foreach (int i in which)
        {
            double margin = head.Predict(chosen.Row(i), scratch) - head.Predict(rejected.Row(i), scratch);
            correct += margin > 0 ? 1 : margin == 0 ? 0.5 : 0;
            loss += LogisticRegression.Softplus(-margin);
        }
        int n = which.Length;
        return new RewardHeldOutReport(n, n > 0 ? correct / n : double.NaN, n > 0 ? loss / n : double.NaN, 1.0);
    }

    private static RewardHeldOutReport ClassifierAccuracy(TrainedHead head, IFeatureRows features, IReadOnlyList<bool> labels, int[] which)
    {
        var scratch = new float[head.ScratchSize];
        double correct = 0, loss = 0, positives = 0;
        foreach (int i in which)
        {
            double logit = head.Predict(features.Row(i), scratch);
            double sign = labels[i] ? 1 : -1;
            correct += logit * sign > 0 ? 1 : logit == 0 ? 0.5 : 0;
            loss += LogisticRegression.Softplus(-sign * logit);
            positives += labels[i] ? 1 : 0;
        }
        int n = which.Length;
        return new RewardHeldOutReport(n, n > 0 ? correct / n : double.NaN, n > 0 ? loss / n : double.NaN, n > 0 ? positives / n : double.NaN);
    }

    private static (int[] Fit, int[] Validation, int[] HeldOut) Split(int n, RewardTrainingOptions options)
    {
        var order = Enumerable.Range(0, n).ToArray();
        new Random(unchecked((int)options.Seed) ^ 0x2e3a).Shuffle(order);
        int heldOut = (int)Math.Round(n * options.HeldOutFraction);
        int validation = (int)Math.Round((n - heldOut) * options.ValidationFraction);
        return (order[(heldOut + validation)..], order[heldOut..(heldOut + validation)], order[..heldOut]);
    }

    private static double[] Ones(int n) => Enumerable.Repeat(1.0, n).ToArray();

    private TextFeaturizer Featurizer(RewardTrainingOptions options) =>
        new(_model, options.Feature, options.BatchSize, options.Threads, options.KvCacheType);

    private HeadFile ToFile(TrainedHead head, RewardTrainingReport report, string? source, int examples)
    {
        string method = report.Method == RewardMethod.BradleyTerry ? "bradley-terry" : "classifier";
        var facts = new Dictionary<string, object?>
        {
            ["method"] = method,
            ["data"] = source,
            ["examples"] = examples,
            ["trainExamples"] = report.TrainExamples,
            ["validationExamples"] = report.ValidationExamples,
            ["lambda"] = report.Lambda,
            ["heldOut"] = new { examples = report.HeldOut.Examples, accuracy = Finite(report.HeldOut.Accuracy), logLoss = Finite(report.HeldOut.LogLoss) },
            ["training"] = new { examples = report.Training.Examples, accuracy = Finite(report.Training.Accuracy), logLoss = Finite(report.Training.LogLoss) },
        };
        string description = report.Method == RewardMethod.BradleyTerry
            ? $"Bradley-Terry reward from {examples} preference pairs{(source is null ? "" : " in " + Path.GetFileName(source))}"
            : $"classifier reward (log-odds of the label) from {examples} labeled texts{(source is null ? "" : " in " + Path.GetFileName(source))}";
        return head.ToHeadFile(HeadRole.Reward, _model.Info.Fingerprint, report.Feature == TextFeature.Mean ? "mean" : "last", description,
            facts.ToDictionary(kv => kv.Key, kv => JsonSerializer.SerializeToElement(kv.Value)));
    }

    private static double? Finite(double x) => double.IsFinite(x) ? x : null;
}
