using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Kernels;

namespace Tilt.Engine.Training;

/// <summary>Label noise of generated preference data.</summary>
public enum LabelNoise
{
    /// <summary>The higher reward wins (pairs with equal rewards are skipped; labels follow the sign of r - threshold).</summary>
    None,

    /// <summary>
    /// Bradley-Terry noise [M20]: y1 is chosen with probability sigmoid((r1 - r2) / scale); a text is labeled positive
    /// with probability sigmoid((r - threshold) / scale).
    /// </summary>
    BradleyTerry,
}

/// <summary>Settings of <see cref="PairGenerator"/>.</summary>
public sealed record PairOptions
{
    /// <summary>Pairs (or labeled texts) to produce. Defaults to 1000.</summary>
    public int Count { get; init => field = value is >= 1 and <= RolloutOptions.MaxRollouts / 2 ? value : throw new ArgumentOutOfRangeException(nameof(Count), value, $"the count must be between 1 and {RolloutOptions.MaxRollouts / 2}, got {value}"); } = 1000;

    /// <summary>Generated tokens per text at most. Defaults to 64.</summary>
    public int MaxTokens { get; init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxTokens), value, "max tokens must be at least 1"); } = 64;

    /// <summary>Label noise. Defaults to none.</summary>
    public LabelNoise Noise { get; init; } = LabelNoise.None;

    /// <summary>Scale of Bradley-Terry noise (in reward units; larger is noisier). Defaults to 1.</summary>
    public double Scale { get; init => field = value > 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(Scale), value, "the noise scale must be finite and > 0"); } = 1.0;

    /// <summary>Labeled texts: the reward above which a text is positive. Defaults to 0.</summary>
    public double Threshold { get; init => field = double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(Threshold), value, "the threshold must be finite"); }

    /// <summary>Seed of the sampling and of the label noise. Defaults to 0.</summary>
    public ulong Seed { get; init; }

    /// <summary>How tokens are drawn. Defaults to p itself (T = 1).</summary>
    public SamplingParameters Sampling { get; init; } = new();

    /// <summary>Texts of one prompt decoded as one batch (clamped to 1..256). Defaults to 128.</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>CPU threads for llama.cpp. Defaults to null (its choice).</summary>
    public int? Threads { get; init; }

    /// <summary>KV cache element type. Defaults to F16.</summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F16;
}

/// <summary>A generated preference pair with the rewards that labeled it.</summary>
public sealed record GeneratedPair(string Prompt, string Chosen, string Rejected, double ChosenReward, double RejectedReward);

/// <summary>A generated labeled text with its reward.</summary>
public sealed record GeneratedLabel(string Prompt, string Text, bool Label, double Reward);

/// <summary>
/// Makes demo datasets for reward heads (issue step 7): texts sampled from the base model, scored by a given reward,
/// labeled by it (optionally with Bradley-Terry noise). Two texts of a pair share their prompt.
/// </summary>
public sealed class PairGenerator
{
    /// <summary>Sampling rounds before giving up on a reward that ties too often.</summary>
    private const int MaxRounds = 8;

    private readonly RolloutCollector _rollouts;
    private readonly IReward _reward;

    public PairGenerator(ILanguageModel model, IStepKernels kernels, IReward reward)
    {
        // Pairs are rollouts labeled by their rewards: the collector checks the arguments and samples them.
        _rollouts = new RolloutCollector(model, kernels, reward);
        _reward = reward;
    }

    /// <summary>Preference pairs; without noise the higher reward is chosen and ties are resampled.</summary>
    public IReadOnlyList<GeneratedPair> GeneratePairs(IReadOnlyList<string> prompts, PairOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var random = new Random(unchecked((int)options.Seed) ^ 0x9a15);
        var pairs = new List<GeneratedPair>(options.Count);
        int ties = 0, drawn = 0;
        for (int round = 0; round < MaxRounds && pairs.Count < options.Count; round++)
        {
            int wanted = options.Count - pairs.Count;
            // Oversample after a round with ties, by the tie rate seen so far.
            double keep = drawn > 0 ? Math.Max(0.05, 1.0 - (double)ties / drawn) : 1.0;
            int draw = Math.Min(RolloutOptions.MaxRollouts / 2, (int)Math.Ceiling(wanted / keep));
            progress?.Report(new TrainingProgress("pairs", pairs.Count, options.Count));
            foreach (var (prompt, a, b) in SamplePairs(prompts, draw, round, options, cancellationToken))
            {
                if (pairs.Count >= options.Count) break;
                drawn++;
                bool firstChosen;
                if (options.Noise == LabelNoise.BradleyTerry)
                {
                    firstChosen = random.NextDouble() < LogisticRegression.Sigmoid((a.Reward - b.Reward) / options.Scale);
                }
                else
                {
                    if (a.Reward == b.Reward) { ties++; continue; }
                    firstChosen = a.Reward > b.Reward;
                }
                var (c, r) = firstChosen ? (a, b) : (b, a);
                pairs.Add(new GeneratedPair(prompt, c.Text, r.Text, c.Reward, r.Reward));
                if (pairs.Count % 50 == 0) progress?.Report(new TrainingProgress("pairs", pairs.Count, options.Count));
            }
        }
        progress?.Report(new TrainingProgress("pairs", pairs.Count, options.Count));
        if (pairs.Count < options.Count)
            throw new TiltException($"the reward '{_reward.Description}' tied on {ties} of {drawn} sampled pairs, so only {pairs.Count} of {options.Count} pairs could be labeled; use Bradley-Terry noise (--noise bt) or a reward that separates texts more finely");
        return pairs;
    }

    /// <summary>Labeled texts: positive when r &gt; threshold (or with probability sigmoid((r - threshold) / scale)).</summary>
    public IReadOnlyList<GeneratedLabel> GenerateLabels(IReadOnlyList<string> prompts, PairOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var random = new Random(unchecked((int)options.Seed) ^ 0x1abe);
        var set = Sample(prompts, options.Count, 0, options, progress, cancellationToken);
        return set.Rollouts.Select(r => new GeneratedLabel(set.Prompts[r.PromptIndex], r.Text,
            options.Noise == LabelNoise.BradleyTerry
                ? random.NextDouble() < LogisticRegression.Sigmoid((r.Reward - options.Threshold) / options.Scale)
                : r.Reward > options.Threshold,
            r.Reward)).ToArray();
    }

    private RolloutSet Sample(IReadOnlyList<string> prompts, int count, uint round, PairOptions options, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken) =>
        _rollouts.Collect(prompts, new RolloutOptions
        {
            Rollouts = count,
            MaxTokens = options.MaxTokens,
            BatchSize = Math.Clamp(options.BatchSize, 1, SessionOptions.MaxSupportedSequences),
            PositionStride = 0,
            Seed = options.Seed,
            RequestId = round,
            Sampling = options.Sampling,
            Threads = options.Threads,
            KvCacheType = options.KvCacheType,
        }, progress, cancellationToken);

    /// <summary>
    /// Pairs spread evenly over the prompts, both texts of a pair from the same prompt: one batch of 2 x pairs rollouts
    /// per prompt, with its own RNG request id (round x prompts + prompt) so prompts and rounds draw distinct noise.
    /// </summary>
    private IEnumerable<(string Prompt, Rollout A, Rollout B)> SamplePairs(IReadOnlyList<string> prompts, int pairs, int round, PairOptions options,
        CancellationToken cancellationToken)
    {
        for (int p = 0; p < prompts.Count; p++)
        {
            int share = pairs / prompts.Count + (p < pairs % prompts.Count ? 1 : 0);
            if (share == 0) continue;
            var set = Sample([prompts[p]], 2 * share, (uint)(round * prompts.Count + p), options, null, cancellationToken);
            for (int i = 0; i + 1 < set.Rollouts.Count; i += 2) yield return (prompts[p], set.Rollouts[i], set.Rollouts[i + 1]);
        }
    }
}
