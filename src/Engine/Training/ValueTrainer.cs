using System.Diagnostics;
using System.Text.Json;
using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;

namespace Tilt.Engine.Training;

/// <summary>
/// Trains a value head V_theta(x, y^t) on the model's final hidden states from rollouts (issue steps 2 and 3):
/// CD-FUDGE [M16] regresses every recorded prefix on the realized reward of its rollout, in closed form (ridge with
/// the penalty chosen on validation rollouts) for linear heads and by mini-batch Adam for two-layer heads; CD-Q [M17]
/// starts from CD-FUDGE and iterates fitted Bellman targets v(s) = sum_z p~(z|s) V_theta(s + z) over the top-k next
/// tokens (r at a stop token or at the token limit), holding each iteration's targets fixed (as in DQN).
/// <para>
/// Rollouts are split by rollout, never by prefix (prefixes of one rollout share its reward): a held-out part for
/// the report, a validation part for the penalty, early stopping and CD-Q's check, and the rest for training.
/// </para>
/// </summary>
public sealed class ValueTrainer
{
    private readonly ILanguageModel _model;
    private readonly IReward _reward;

    /// <param name="model">The model the rollouts came from (CD-Q decodes candidate tokens with it).</param>
    /// <param name="reward">The reward the rollouts were scored with (CD-Q scores texts that end at a candidate).</param>
    public ValueTrainer(ILanguageModel model, IReward reward)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
    }

    public ValueTrainingResult Train(RolloutSet rollouts, ValueTrainingOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rollouts);
        ArgumentNullException.ThrowIfNull(options);
        var clock = Stopwatch.StartNew();
        var info = _model.Info;
        if (rollouts.ModelFingerprint != info.Fingerprint || rollouts.HiddenSize != info.HiddenSize)
            throw new TiltException($"the rollouts were collected on model {rollouts.ModelFingerprint} (d = {rollouts.HiddenSize}), not on {info.Fingerprint} (d = {info.HiddenSize})");
        if (options.Kind == HeadKind.Mlp && options.Adam.HiddenUnits < 1)
            throw new ArgumentException("a two-layer head needs Adam.HiddenUnits >= 1");

        var (fit, validation, heldOut) = Split(rollouts, options);
        var fitRows = PrefixRows.All(rollouts, fit);
        var validationRows = PrefixRows.All(rollouts, validation);
        if (fitRows.Count == 0) throw new TiltException("no training prefixes: collect more rollouts or lower the held-out fractions");

        // Standardize on every row the head may be fitted on.
        var builder = new FeatureScaling.Builder(rollouts.HiddenSize);
        foreach (var rows in new[] { fitRows, validationRows })
        {
            var w = rows.Weights();
            for (int i = 0; i < rows.Count; i++) builder.Add(rows.Row(i), w[i]);
        }
        var scaling = builder.Build();

        // CD-Q never trains on the validation rollouts: they check its iterates.
        bool refitOnValidation = options.Method == ValueMethod.Fudge;
        progress?.Report(new TrainingProgress("fit", 0, 1));
        var (head, alpha) = FitFudge(fitRows, validationRows, scaling, options, refitOnValidation, progress, cancellationToken);
        progress?.Report(new TrainingProgress("fit", 1, 1));

        var qIterations = new List<QIteration>();
        int chosen = 0, qPrefixes = 0;
        if (options.Method == ValueMethod.Q)
        {
            var (selectedRollouts, selectedRows) = BellmanExpansion.Select(rollouts, fit, options.QMaxPrefixes, options.QPrefixesPerRollout, options.Seed);
            var expansion = BellmanExpansion.Build(_model, _reward, rollouts, selectedRollouts, selectedRows, options.QTopK,
                options.Threads, options.KvCacheType, progress, cancellationToken);
            qPrefixes = expansion.Count;
            (head, chosen) = IterateBellman(rollouts, expansion, validationRows, scaling, head, alpha, options, qIterations, progress, cancellationToken);
        }

        var report = new ValueTrainingReport
        {
            Method = options.Method,
            Kind = options.Kind,
            TrainRollouts = fit.Length,
            ValidationRollouts = validation.Length,
            TrainRows = fitRows.Count + (refitOnValidation ? validationRows.Count : 0),
            Alpha = alpha,
            HeldOut = PrefixRewardBaseline.Attach(_model, _reward, rollouts, heldOut, Evaluate(head, rollouts, heldOut), cancellationToken),
            QIterations = qIterations,
            QChosenIteration = chosen,
            QPrefixes = qPrefixes,
            Elapsed = clock.Elapsed,
        };
        var file = head.ToHeadFile(HeadRole.Value, info.Fingerprint, "last", Describe(rollouts, options), Metadata(rollouts, options, report));
        var accuracy = report.HeldOut.ByPrefixLength.Select(b => new HeldOutAccuracy
        {
            From = b.From, To = b.To, Rows = b.Rows, RSquared = Finite(b.RSquared), PrefixRewardR2 = Finite(b.PrefixRewardRSquared),
        }).ToArray();
        file = new HeadFile(file.Header with { HeldOutByPrefixLength = accuracy }, file.Weights);
        return new ValueTrainingResult(head, file, report);
    }

    /// <summary>
    /// R^2 and MSE of V against the realized reward on every recorded prefix of the given rollouts, pooled and by
    /// prefix length (buckets 0, 1-3, 4-7, 8-15, ...).
    /// </summary>
    public static ValueHeldOutReport Evaluate(TrainedHead head, RolloutSet rollouts, IReadOnlyCollection<int> which)
    {
        ArgumentNullException.ThrowIfNull(head);
        ArgumentNullException.ThrowIfNull(rollouts);
        ArgumentNullException.ThrowIfNull(which);
        var rows = PrefixRows.All(rollouts, which);
        var rewards = rows.Rewards();
        var weights = rows.Weights();
        var values = new double[rows.Count];
        head.Predict(rows, values);
        var buckets = new List<PrefixBucket>();
        int maxPosition = 0;
        for (int i = 0; i < rows.Count; i++) maxPosition = Math.Max(maxPosition, rows.Position(i));
        // Buckets 0, 1-3, 4-7, 8-15, ...: the value's accuracy changes fastest at short prefixes.
        var ranges = new List<(int From, int To)> { (0, 0), (1, 3) };
        for (int from = 4; from <= maxPosition; from *= 2) ranges.Add((from, 2 * from - 1));
        foreach (var (from, to) in ranges)
        {
            var (n, mean, r2, mse) = Accuracy(rows, values, rewards, weights, from, to);
            if (n > 0) buckets.Add(new PrefixBucket(from, to, n, mean, r2, mse));
        }
        var (count, _, rSquared, error) = Accuracy(rows, values, rewards, weights, 0, int.MaxValue);
        return new ValueHeldOutReport(which.Count, count, rSquared, error, buckets);
    }

    private static (long Rows, double Mean, double RSquared, double Mse) Accuracy(PrefixRows rows, double[] values, double[] rewards, double[] weights, int from, int to)
    {
        double w = 0, sum = 0;
        long n = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            int p = rows.Position(i);
            if (p < from || p > to) continue;
            n++;
            w += weights[i];
            sum += weights[i] * rewards[i];
        }
        if (n == 0 || w <= 0) return (n, double.NaN, double.NaN, double.NaN);
        double mean = sum / w, sse = 0, sst = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            int p = rows.Position(i);
            if (p < from || p > to) continue;
            sse += weights[i] * (values[i] - rewards[i]) * (values[i] - rewards[i]);
            sst += weights[i] * (rewards[i] - mean) * (rewards[i] - mean);
        }
        return (n, mean, sst > 0 ? 1 - sse / sst : double.NaN, sse / w);
    }

    /// <summary>Seeded split of the rollouts into (fit, validation, held out).</summary>
    private static (int[] Fit, int[] Validation, int[] HeldOut) Split(RolloutSet set, ValueTrainingOptions options)
    {
        int n = set.Rollouts.Count;
        var order = Enumerable.Range(0, n).ToArray();
        new Random(unchecked((int)options.Seed) ^ 0x5b1d).Shuffle(order);
        int heldOut = (int)Math.Round(n * options.HeldOutFraction);
        int validation = (int)Math.Round((n - heldOut) * options.ValidationFraction);
        return (order[(heldOut + validation)..].Order().ToArray(), order[heldOut..(heldOut + validation)].Order().ToArray(), order[..heldOut].Order().ToArray());
    }

    private static (TrainedHead Head, double Alpha) FitFudge(PrefixRows fit, PrefixRows validation, FeatureScaling scaling, ValueTrainingOptions options,
        bool refitOnValidation, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        if (options.Kind == HeadKind.Mlp)
        {
            var train = new RegressionData(fit, fit.Rewards(), fit.Weights());
            var check = validation.Count > 0 ? new RegressionData(validation, validation.Rewards(), validation.Weights()) : null;
            var result = AdamRegression.Fit(train, scaling, options.Adam, check, null, progress, cancellationToken);
            return (result.Head, double.NaN);
        }
        var fitEquations = Equations(fit, fit.Rewards(), scaling, cancellationToken);
        var validationEquations = Equations(validation, validation.Rewards(), scaling, cancellationToken);
        double alpha = options.Alpha ?? (validation.Count > 0 ? RidgeRegression.SelectLambda(fitEquations, validationEquations, options.Alphas).Alpha : 1e-3);
        if (refitOnValidation) fitEquations.Add(validationEquations);
        var solution = fitEquations.Solve(alpha * fitEquations.WeightSum);
        return (TrainedHead.Linear(scaling, solution.Weights, solution.Bias), alpha);
    }

    private static NormalEquations Equations(IFeatureRows rows, double[] targets, FeatureScaling scaling, CancellationToken cancellationToken)
    {
        var equations = new NormalEquations(rows.Dimension);
        var z = new float[rows.Dimension];
        double[] weights = rows is PrefixRows p ? p.Weights() : Enumerable.Repeat(1.0, rows.Count).ToArray();
        for (int i = 0; i < rows.Count; i++)
        {
            if ((i & 0xFFFF) == 0) cancellationToken.ThrowIfCancellationRequested();
            scaling.Apply(rows.Row(i), z);
            equations.Add(z, targets[i], weights[i]);
        }
        return equations;
    }

    private static (TrainedHead Head, int Chosen) IterateBellman(RolloutSet set, BellmanExpansion expansion, PrefixRows validation, FeatureScaling scaling,
        TrainedHead start, double alpha, ValueTrainingOptions options, List<QIteration> log, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var rows = new PrefixRows(set, expansion.RolloutOf, expansion.RowOf);
        var weights = rows.Weights();
        var check = validation.Count > 0 ? new RegressionData(validation, validation.Rewards(), validation.Weights()) : null;
        var head = start;
        var best = start;
        int chosen = 0;
        double bestError = check?.MeanSquaredError(start) ?? double.NaN;
        log.Add(new QIteration(0, bestError, Residual(head, rows, expansion, weights)));
        for (int iteration = 1; iteration <= options.QIterations; iteration++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var targets = expansion.Targets(head); // held fixed while this iteration fits them [M17]
            if (options.Kind == HeadKind.Mlp)
            {
                var adam = options.Adam with { Epochs = options.QEpochs, Seed = options.Adam.Seed + (ulong)iteration };
                head = AdamRegression.Fit(new RegressionData(rows, targets, weights), scaling, adam, null, head, null, cancellationToken).Head;
            }
            else
            {
                var equations = Equations(rows, targets, scaling, cancellationToken);
                var solution = equations.Solve(alpha * equations.WeightSum);
                head = TrainedHead.Linear(scaling, solution.Weights, solution.Bias);
            }
            double error = check?.MeanSquaredError(head) ?? double.NaN;
            log.Add(new QIteration(iteration, error, Residual(head, rows, expansion, weights)));
            progress?.Report(new TrainingProgress("cd-q iterations", iteration, options.QIterations));
            bool better = options.QSelection == QSelection.Last || double.IsNaN(bestError) || error < bestError;
            if (better)
            {
                best = head;
                bestError = error;
                chosen = iteration;
            }
        }
        return (best, chosen);
    }

    /// <summary>Weighted mean of (V(s) - T V(s))^2 over the training prefixes: how far the head is from a fixed point.</summary>
    private static double Residual(TrainedHead head, PrefixRows rows, BellmanExpansion expansion, double[] weights)
    {
        var targets = expansion.Targets(head);
        var values = new double[rows.Count];
        head.Predict(rows, values);
        double sum = 0, total = 0;
        for (int i = 0; i < values.Length; i++)
        {
            sum += weights[i] * (values[i] - targets[i]) * (values[i] - targets[i]);
            total += weights[i];
        }
        return total > 0 ? sum / total : double.NaN;
    }

    private static string Describe(RolloutSet set, ValueTrainingOptions options) =>
        $"{(options.Method == ValueMethod.Fudge ? "CD-FUDGE" : "CD-Q")} value of {set.RewardDescription} from {set.Rollouts.Count} rollouts of at most {set.MaxTokens} tokens";

    private static Dictionary<string, JsonElement> Metadata(RolloutSet set, ValueTrainingOptions options, ValueTrainingReport report)
    {
        var held = report.HeldOut;
        var facts = new Dictionary<string, object?>
        {
            ["method"] = options.Method == ValueMethod.Fudge ? "cd-fudge" : "cd-q",
            ["reward"] = set.RewardDescription,
            ["rollouts"] = set.Rollouts.Count,
            ["prompts"] = set.Prompts.Count,
            ["maxTokens"] = set.MaxTokens,
            ["seed"] = options.Seed,
            ["trainRollouts"] = report.TrainRollouts,
            ["validationRollouts"] = report.ValidationRollouts,
            ["trainRows"] = report.TrainRows,
            ["alpha"] = double.IsNaN(report.Alpha) ? null : report.Alpha,
            ["heldOut"] = new
            {
                rollouts = held.Rollouts,
                rows = held.Rows,
                rSquared = Finite(held.RSquared),
                mse = Finite(held.MeanSquaredError),
                byPrefixLength = held.ByPrefixLength.Select(b => new { from = b.From, to = b.To, rows = b.Rows, rSquared = Finite(b.RSquared), mse = Finite(b.MeanSquaredError), prefixRewardR2 = Finite(b.PrefixRewardRSquared) }),
            },
        };
        if (options.Method == ValueMethod.Q)
        {
            facts["qIterations"] = options.QIterations;
            facts["qTopK"] = options.QTopK;
            facts["qPrefixes"] = report.QPrefixes;
            facts["qChosenIteration"] = report.QChosenIteration;
        }
        return facts.ToDictionary(kv => kv.Key, kv => JsonSerializer.SerializeToElement(kv.Value));
    }

    private static double? Finite(double x) => double.IsFinite(x) ? x : null;
}
