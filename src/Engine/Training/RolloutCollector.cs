using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Kernels;
using Tilt.Engine.Decoding;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Training;

/// <summary>What <see cref="RolloutCollector"/> samples.</summary>
public sealed record RolloutOptions : DecodingOptions
{
    /// <summary>Largest number of rollouts one collection may ask for.</summary>
    public const int MaxRollouts = 10_000_000;

    /// <summary>
    /// CPU threads of the collection's engine, 1..the logical CPUs; null = <see cref="CpuTopology.DefaultThreads"/>.
    /// </summary>
    public int? Threads
    {
        get;
        init => field = CpuTopology.CheckThreads(value, nameof(Threads));
    }

    /// <summary>KV cache element type of the collection's engine. Defaults to F16.</summary>
    public KvCacheType KvCacheType { get; init; } = KvCacheType.F16;

    /// <summary>Continuations to sample, spread evenly over the prompts (1..10^7). Defaults to 2000.</summary>
    public int Rollouts
    {
        get;
        init => field = value is >= 1 and <= MaxRollouts ? value : throw new ArgumentOutOfRangeException(nameof(Rollouts), value, $"rollouts must be between 1 and {MaxRollouts}, got {value}");
    } = 2000;

    /// <summary>Rollouts of one prompt decoded as one batch (forks of the prompt's KV cache). 1..256. Defaults to 128.</summary>
    public int BatchSize { get; init => field = SessionOptions.CheckSequences(value, nameof(BatchSize), "the batch size"); } = 128;

    /// <summary>
    /// Record the hidden state after every Stride-th prefix (0, s, 2s, ...); 0 records none (rewards only, e.g. for
    /// preference data). Memory: rollouts x (MaxTokens / s + 1) x d floats. Defaults to 1.
    /// </summary>
    public int PositionStride
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(PositionStride), value, $"the position stride must be >= 0, got {value}");
    } = 1;
}

/// <summary>
/// Samples continuations of a prompt set from the base model and records what value training needs (issue step 1):
/// for every rollout the final hidden state after each prefix and the reward of the finished text. Rollouts of one
/// prompt are decoded as batches of forks of the prompt's KV cache (prefill once, one decode call per step over the
/// whole batch), through the same loop as base sampling, so rollout i is the same text whatever the batch size.
/// </summary>
public sealed class RolloutCollector
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly IReward _reward;

    public RolloutCollector(ILanguageModel model, IStepKernels kernels, IReward reward)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        _reward = reward ?? throw new ArgumentNullException(nameof(reward));
    }

    /// <summary>
    /// Samples <see cref="RolloutOptions.Rollouts"/> continuations spread evenly over the prompts (the first
    /// Rollouts % prompts get one more), decoded in batches of forks per prompt.
    /// </summary>
    public RolloutSet Collect(IReadOnlyList<string> prompts, RolloutOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        if (prompts.Count == 0) throw new ArgumentException("at least one prompt is needed", nameof(prompts));
        var info = _model.Info;
        int d = info.HiddenSize;
        var promptTokens = prompts.Select(p => _model.Tokenize(p ?? throw new ArgumentException("prompts must not be null", nameof(prompts)))).ToArray();
        foreach (var tokens in promptTokens) PromptLimits.Check(info, tokens.Length, options.MaxTokens);

        int n = options.Rollouts, stride = options.PositionStride;
        int capacity = stride == 0 ? 0 : options.MaxTokens / stride + 1; // rows per rollout at most
        long floats = (long)n * capacity * d;
        if (floats > 4L * int.MaxValue)
            throw new TiltException($"{n} rollouts x {capacity} prefixes x d={d} would need {floats * 4 / (1 << 30)} GiB of features; raise the position stride or lower the rollouts");

        int k = Math.Min(options.BatchSize, n);
        if ((long)k * capacity * d > Array.MaxLength)
            throw new TiltException($"a batch of {k} rollouts x {capacity} prefixes x d={d} does not fit one array; raise the position stride or lower the batch size");
        // One engine for the whole collection, sized for one batch; batches run one after another, so each decodes exactly
        // as one batch of forks of its prompt (the same sequences, the same numerics, whatever ran before).
        using var engine = new DecodingEngine(_model, _kernels, new EngineOptions
        {
            MaxSequences = k,
            MaxSequenceLength = promptTokens.Max(t => t.Length) + options.MaxTokens + 2,
            PromptCacheEntries = 0,
            Threads = options.Threads,
            KvCacheType = options.KvCacheType,
        });
        var rollouts = new Rollout[n];
        progress?.Report(new TrainingProgress("rollouts", 0, n));

        int done = 0;
        foreach (var (prompt, first, count) in Batches(prompts.Count, n, k))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var samples = engine.RunAsync(new DecodingRequest
            {
                Prompt = prompts[prompt],
                Options = new GenerationOptions
                {
                    Samples = count,
                    MaxTokens = options.MaxTokens,
                    Sampling = options.Sampling,
                    Seed = options.Seed,
                    RequestId = options.RequestId,
                    // Rollout i draws from RNG row i whatever batch it falls in; stride 0 still decodes each last token
                    // (a hidden-state reward reads the whole text's state) but keeps no prefix states.
                    FirstRow = (uint)first,
                    HiddenStateStride = stride > 0 ? stride : int.MaxValue,
                },
            }, cancellationToken).GetAwaiter().GetResult();

            var inputs = new RewardInput[count];
            for (int c = 0; c < count; c++)
            {
                var tokens = samples[c].Tokens.ToArray();
                bool finished = samples[c].Finish == AlignFinish.Eos;
                inputs[c] = new RewardInput
                {
                    Prompt = prompts[prompt],
                    Text = _model.Detokenize(finished ? tokens.AsSpan(0, tokens.Length - 1) : tokens),
                    Tokens = tokens,
                    IsFinished = finished,
                    FinalHidden = _reward.NeedsHiddenState ? samples[c].FinalHidden : ReadOnlyMemory<float>.Empty,
                };
            }
            var rewards = new double[count];
            _reward.ScoreChecked(inputs, rewards);
            for (int c = 0; c < count; c++)
            {
                var s = samples[c];
                rollouts[first + c] = new Rollout
                {
                    PromptIndex = prompt,
                    Tokens = (int[])inputs[c].Tokens,
                    Text = inputs[c].Text,
                    Finished = inputs[c].IsFinished,
                    Reward = rewards[c],
                    Positions = capacity == 0 ? [] : [.. s.HiddenPositions],
                    Features = capacity == 0 ? ReadOnlyMemory<float>.Empty : s.HiddenStates,
                };
            }
            done += count;
            progress?.Report(new TrainingProgress("rollouts", done, n));
        }
        return new RolloutSet(info.Fingerprint, d, prompts.ToArray(), promptTokens, rollouts, options.MaxTokens, _reward.Description);
    }

    /// <summary>
    /// Splits n rollouts over the prompts (the first n % prompts get one more) into batches of at most k per prompt:
    /// (prompt, first rollout index, count).
    /// </summary>
    internal static IEnumerable<(int Prompt, int First, int Count)> Batches(int prompts, int n, int k)
    {
        int first = 0;
        for (int p = 0; p < prompts; p++)
        {
            int share = n / prompts + (p < n % prompts ? 1 : 0);
            for (int start = 0; start < share; start += k)
            {
                int count = Math.Min(k, share - start);
                yield return (p, first, count);
                first += count;
            }
        }
    }
}
