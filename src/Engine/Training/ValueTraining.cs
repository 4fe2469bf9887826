using Tilt.Engine.Heads;
using Tilt.Engine.Models;

namespace Tilt.Engine.Training;

/// <summary>How a value head is trained.</summary>
public enum ValueMethod
{
    /// <summary>CD-FUDGE [M16]: regress every prefix on the realized reward of its rollout.</summary>
    Fudge,

    /// <summary>CD-Q [M17]: fitted Bellman iteration over the top-k next tokens, starting from CD-FUDGE.</summary>
    Q,
}

/// <summary>Which CD-Q iterate becomes the head.</summary>
public enum QSelection
{
    /// <summary>The iterate (0 = the CD-FUDGE start) with the lowest error against realized rewards on the validation rollouts.</summary>
    BestValidation,

    /// <summary>The last iterate (the approximate fixed point).</summary>
    Last,
}

/// <summary>Settings of <see cref="ValueTrainer"/>.</summary>
public sealed record ValueTrainingOptions
{
    /// <summary>CD-FUDGE or CD-Q. Defaults to CD-FUDGE.</summary>
    public ValueMethod Method { get; init; } = ValueMethod.Fudge;

    /// <summary>Linear (closed-form ridge) or two-layer (Adam) head. Defaults to linear.</summary>
    public HeadKind Kind { get; init; } = HeadKind.Linear;

    /// <summary>Architecture and optimizer of two-layer heads (HiddenUnits must be >= 1 for them).</summary>
    public AdamOptions Adam { get; init; } = new();

    /// <summary>Fraction of the rollouts held out for the report (never trained on). 0..0.9. Defaults to 0.2.</summary>
    public double HeldOutFraction { get; init => field = Fraction(value, nameof(HeldOutFraction)); } = 0.2;

    /// <summary>
    /// Fraction of the remaining rollouts used to choose the ridge penalty, to stop Adam early and to check CD-Q's
    /// iterates. 0..0.9. Defaults to 0.2.
    /// </summary>
    public double ValidationFraction { get; init => field = Fraction(value, nameof(ValidationFraction)); } = 0.2;

    /// <summary>
    /// Ridge penalty relative to the training weight (lambda = alpha * sum of row weights, on standardized features);
    /// null chooses it from <see cref="Alphas"/> by validation error (1e-3 when there are no validation rollouts).
    /// </summary>
    public double? Alpha { get; init => field = value is null || (value > 0 && double.IsFinite(value.Value)) ? value : throw new ArgumentOutOfRangeException(nameof(Alpha), value, "alpha must be finite and > 0"); }

    /// <summary>Candidate penalties. Defaults to <see cref="RidgeRegression.DefaultAlphas"/>.</summary>
    public IReadOnlyList<double> Alphas { get; init; } = RidgeRegression.DefaultAlphas;

    /// <summary>CD-Q: Bellman iterations. Defaults to 6.</summary>
    public int QIterations { get; init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(QIterations), value, "iterations must be >= 1"); } = 6;

    /// <summary>CD-Q: next tokens per prefix (the top-k of p, renormalized; the approximation of [M14]). Defaults to 8.</summary>
    public int QTopK { get; init => field = value is >= 1 and <= 240 ? value : throw new ArgumentOutOfRangeException(nameof(QTopK), value, "top-k must be between 1 and 240"); } = 8;

    /// <summary>CD-Q: training prefixes at most (each costs k decoded candidates). Defaults to 3000.</summary>
    public int QMaxPrefixes { get; init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(QMaxPrefixes), value, "prefixes must be >= 1"); } = 3000;

    /// <summary>CD-Q: prefixes taken from one rollout at most (the walk through a rollout costs one decoded token per position, shared by its prefixes). Defaults to 32.</summary>
    public int QPrefixesPerRollout { get; init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(QPrefixesPerRollout), value, "prefixes per rollout must be >= 1"); } = 32;

    /// <summary>CD-Q with a two-layer head: Adam epochs per iteration (warm-started). Defaults to 5.</summary>
    public int QEpochs { get; init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(QEpochs), value, "epochs must be >= 1"); } = 5;

    /// <summary>CD-Q: which iterate to keep. Defaults to the best on validation rollouts.</summary>
    public QSelection QSelection { get; init; } = QSelection.BestValidation;

    /// <summary>Seed of the split, the prefix subsample and Adam. Defaults to 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>CPU threads for llama.cpp (CD-Q's decodes). Defaults to null (its choice).</summary>
    public int? Threads { get; init; }

    /// <summary>KV cache type of CD-Q's decodes. Defaults to F16.</summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F16;

    private static double Fraction(double value, string name) =>
        value is >= 0 and <= 0.9 ? value : throw new ArgumentOutOfRangeException(name, value, $"{name} must be between 0 and 0.9, got {value}");
}

/// <summary>Accuracy of a value head on prefixes of one length range.</summary>
/// <param name="From">Shortest prefix length (tokens after the prompt) in the bucket.</param>
/// <param name="To">Longest prefix length in the bucket.</param>
/// <param name="Rows">Prefixes in the bucket.</param>
/// <param name="MeanReward">Mean realized reward of their rollouts.</param>
/// <param name="RSquared">1 - SSE / SST of V against the realized reward (NaN when the rewards do not vary).</param>
/// <param name="MeanSquaredError">Mean of (V - r)^2.</param>
public sealed record PrefixBucket(int From, int To, long Rows, double MeanReward, double RSquared, double MeanSquaredError)
{
    /// <summary>
    /// corr(r(x, y^t), r(x, y))^2 of the prefix reward with the realized reward on the same prefixes: the baseline
    /// <see cref="RSquared"/> must beat (NaN when either is constant or it was not computed).
    /// </summary>
    public double PrefixRewardRSquared { get; init; } = double.NaN;
}

/// <summary>Accuracy of a value head against realized rewards on rollouts it was not trained on.</summary>
public sealed record ValueHeldOutReport(int Rollouts, long Rows, double RSquared, double MeanSquaredError, IReadOnlyList<PrefixBucket> ByPrefixLength);

/// <summary>One CD-Q iterate: its error against realized rewards on validation rollouts and its Bellman residual on the training prefixes.</summary>
public sealed record QIteration(int Iteration, double ValidationMse, double BellmanResidual);

/// <summary>What a value training run did and how well the head predicts.</summary>
public sealed record ValueTrainingReport
{
    public required ValueMethod Method { get; init; }
    public required HeadKind Kind { get; init; }
    public required int TrainRollouts { get; init; }
    public required int ValidationRollouts { get; init; }
    public required long TrainRows { get; init; }

    /// <summary>The ridge penalty (relative) of linear heads; NaN for two-layer heads.</summary>
    public required double Alpha { get; init; }

    /// <summary>Held-out accuracy: R^2 of V against the realized reward, by prefix length.</summary>
    public required ValueHeldOutReport HeldOut { get; init; }

    /// <summary>CD-Q: the iterates (0 = the CD-FUDGE start); empty for CD-FUDGE.</summary>
    public IReadOnlyList<QIteration> QIterations { get; init; } = [];

    /// <summary>CD-Q: the iterate kept.</summary>
    public int QChosenIteration { get; init; }

    /// <summary>CD-Q: prefixes the Bellman targets were computed for.</summary>
    public int QPrefixes { get; init; }

    public TimeSpan Elapsed { get; init; }
}

/// <summary>A trained value head with its file and report.</summary>
public sealed record ValueTrainingResult(TrainedHead Head, HeadFile File, ValueTrainingReport Report);
