using System.Diagnostics;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Engine.Values;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Evaluation;

/// <summary>What a sweep measures against.</summary>
public sealed record EvaluationSettings
{
    public required IReadOnlyList<string> Prompts { get; init; }
    public required IReward Reward { get; init; }

    /// <summary>The value of controlled decoding, given the tilt strength beta of the point (exact soft values need it).</summary>
    public required Func<double, IValueFunction> ValueFor { get; init; }

    /// <summary>Aligned outputs per prompt and configuration. Defaults to 8.</summary>
    public int OutputsPerPrompt { get; init; } = 8;

    /// <summary>The most base samples per prompt (each is a whole decoded response).</summary>
    public const int MaxBaseSamplesPerPrompt = 1 << 16;

    /// <summary>Base-model samples per prompt that aligned outputs are compared with, 2..65536. Defaults to 64.</summary>
    public int BaseSamplesPerPrompt
    {
        get;
        init => field = value is >= 2 and <= MaxBaseSamplesPerPrompt
            ? value
            : throw new ArgumentOutOfRangeException(nameof(BaseSamplesPerPrompt), value, $"base samples per prompt must be 2..{MaxBaseSamplesPerPrompt}, got {value}");
    } = 64;

    public int MaxTokens { get; init; } = 48;
    public ulong Seed { get; init; }

    /// <summary>
    /// A forced opening of every response (base samples and aligned outputs alike): how well a strategy recovers from a
    /// prefix that leads away from the reward. Defaults to none.
    /// </summary>
    public string? ForcedPrefix { get; init; }

    /// <summary>CPU threads of the evaluator's engines (their setting alone: requests never carry it). Defaults to null, one per physical core.</summary>
    public int? Threads { get; init; }
}

/// <summary>
/// Runs a sweep of strategy configurations on a prompt set and measures, for each, the win-rate against base
/// samples [M10] with a 95% interval, KL (estimate, and exact where the model is tabular), mean reward, compute
/// (tokens evaluated per output token) and latency. Also computes the exact best-of-n curve and the optimal
/// frontier pi*_beta [M2] when the model is tabular, so measured points can be read against them.
/// </summary>
public sealed class Evaluator
{
    private readonly ILanguageModel _model;
    private readonly IStepKernels _kernels;
    private readonly EvaluationSettings _settings;
    private double[][]? _baseRewards;

    public Evaluator(ILanguageModel model, IStepKernels kernels, EvaluationSettings settings)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        _settings = settings ?? throw new ArgumentNullException(nameof(settings));
        if (settings.Prompts.Count == 0) throw new ArgumentException("the prompt set is empty", nameof(settings));
    }

    /// <summary>Base-model rewards per prompt ([prompt][sample]), drawn once and shared by every point.</summary>
    public async Task<double[][]> BaseRewardsAsync(CancellationToken cancellationToken = default)
    {
        if (_baseRewards is not null) return _baseRewards;
        if (_settings.Reward.NeedsHiddenState)
            throw new TiltException($"the evaluation reward {_settings.Reward.Description} reads hidden states; evaluate with a text reward (heads can be the value instead)");
        using var engine = CreateEngine();
        // Every prompt's batches go to the engine at once; it decodes them together as capacity allows.
        var jobs = new List<(int Prompt, Task<IReadOnlyList<AlignedSample>> Samples)>();
        for (int p = 0; p < _settings.Prompts.Count; p++)
        {
            for (int done = 0; done < _settings.BaseSamplesPerPrompt;)
            {
                int batch = Math.Min(EngineCapacity, _settings.BaseSamplesPerPrompt - done);
                jobs.Add((p, engine.RunAsync(new DecodingRequest
                {
                    Prompt = _settings.Prompts[p],
                    Options = new GenerationOptions
                    {
                        Samples = batch, MaxTokens = _settings.MaxTokens, Seed = _settings.Seed ^ 0xBA5EUL, RequestId = (uint)(p * 1000 + done),
                    },
                    Reward = _settings.Reward,
                    ForcedPrefix = _settings.ForcedPrefix,
                }, cancellationToken)));
                done += batch;
            }
        }
        await Task.WhenAll(jobs.Select(j => j.Samples)).ConfigureAwait(false);
        var all = new double[_settings.Prompts.Count][];
        for (int p = 0; p < all.Length; p++)
            all[p] = jobs.Where(j => j.Prompt == p).SelectMany(j => j.Samples.Result.Select(s => s.Reward)).ToArray();
        return _baseRewards = all;
    }

    /// <summary>Sequences of the evaluator's engine: the largest configuration of the default sweep (best-of-64).</summary>
    private const int EngineCapacity = 64;

    /// <summary>An engine for one sweep step: every prompt's requests are decoded together.</summary>
    private DecodingEngine CreateEngine()
    {
        int longestPrompt = _settings.Prompts.Max(p => _model.Tokenize(p).Length)
            + (string.IsNullOrEmpty(_settings.ForcedPrefix) ? 0 : _model.Tokenize(_settings.ForcedPrefix, addBos: false).Length);
        return new DecodingEngine(_model, _kernels, new EngineOptions
        {
            MaxSequences = EngineCapacity,
            MaxSequenceLength = longestPrompt + _settings.MaxTokens + 2,
            MaxQueuedRequests = Math.Max(256, 4 * _settings.Prompts.Count),
            Threads = _settings.Threads,
        });
    }

    /// <summary>Runs one configuration on every prompt.</summary>
    public async Task<EvaluatedPoint> EvaluateAsync(EvaluationConfig config, CancellationToken cancellationToken = default)
    {
        var baseRewards = await BaseRewardsAsync(cancellationToken).ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        var winRates = new List<WinRateEstimate>();
        var kls = new List<double>();
        var rewards = new List<double>();
        double evaluated = 0, outputTokens = 0, latency = 0, firstText = 0;
        string klMethod = "";
        using var engine = CreateEngine();
        var perPrompt = await Task.WhenAll(_settings.Prompts.Select((prompt, p) => RunAsync(engine, config, prompt, (uint)p, cancellationToken))).ConfigureAwait(false);
        for (int p = 0; p < _settings.Prompts.Count; p++)
        {
            var outputs = perPrompt[p];
            var r = outputs.Select(o => o.Reward).ToArray();
            winRates.Add(WinRate.Estimate(r, baseRewards[p]));
            rewards.AddRange(r);
            kls.AddRange(outputs.Select(o => o.Kl.Value));
            klMethod = EvaluatedPoint.MethodName(outputs[0].Kl.Method);
            evaluated += outputs.Sum(o => (double)o.TokensEvaluated);
            outputTokens += outputs.Sum(o => Math.Max(1, o.Tokens.Count));
            latency += outputs.Sum(o => o.Timings.Total.TotalMilliseconds);
            firstText += outputs.Sum(o => o.Timings.FirstAccepted.TotalMilliseconds);
        }
        int n = rewards.Count;
        // Prompts are independent: the mean of per-prompt win-rates has variance sum(se_i^2) / P^2.
        double win = winRates.Average(w => w.Value);
        double se = Math.Sqrt(winRates.Sum(w => w.StandardError * w.StandardError)) / winRates.Count;
        var klEstimate = KlEstimate.FromSamples(kls.ToArray());
        var (klExact, winExact) = ExactFigures(config);
        return new EvaluatedPoint
        {
            Id = config.Id,
            Series = config.Series,
            Method = config.Method,
            N = config.N,
            K = config.K,
            M = config.M,
            Beta = config.Beta,
            Prompts = _settings.Prompts.Count,
            Outputs = n,
            WinRate = win,
            WinRateLower = Math.Max(0, win - WinRate.Z95 * se),
            WinRateUpper = Math.Min(1, win + WinRate.Z95 * se),
            Kl = klEstimate.Value,
            KlStandardError = double.IsFinite(klEstimate.StandardError) ? klEstimate.StandardError : 0,
            KlMethod = klMethod,
            KlExact = klExact,
            WinRateExact = winExact,
            MeanReward = rewards.Average(),
            BaseMeanReward = baseRewards.SelectMany(b => b).Average(),
            TokensEvaluatedPerOutputToken = evaluated / outputTokens,
            LatencyMsPerOutput = latency / n,
            FirstTextMs = firstText / n,
            Seconds = clock.Elapsed.TotalSeconds,
            PromptRewards = new RewardsByPrompt(perPrompt.Select(o => o.Select(x => x.Reward))),
            FirstTextMsByPrompt = new RewardsByPrompt(perPrompt.Select(o => o.Select(x => x.Timings.FirstAccepted.TotalMilliseconds))),
        };
    }

    private Task<IReadOnlyList<AlignedSample>> RunAsync(DecodingEngine engine, EvaluationConfig config, string prompt, uint promptIndex, CancellationToken ct)
    {
        var spec = config.Spec with { Samples = _settings.OutputsPerPrompt };
        var options = spec.Build() with { MaxTokens = _settings.MaxTokens, Seed = _settings.Seed, RequestId = promptIndex };
        // Exact soft values depend on the tilt strength; only token-wise CD tilts by the point's beta.
        var value = StrategyCatalog.Get(spec.Strategy).ReadsValue ? _settings.ValueFor(config.Method == EvaluationMethod.Tokenwise ? config.Beta : 1.0) : null;
        var request = new DecodingRequest { Prompt = prompt, Reward = _settings.Reward, Value = value, Options = options, ForcedPrefix = _settings.ForcedPrefix };
        return engine.RunAsync(request, ct);
    }

    /// <summary>
    /// Exact KL and win-rate of a configuration, averaged over prompts, where the model is tabular: best-of-n from
    /// [M5]-[M10]; token-wise CD by enumerating its policy pi(y) = prod_t pi(y_t | s_t). Blockwise CD, rejection and
    /// beam search: null.
    /// </summary>
    private (double? Kl, double? WinRate) ExactFigures(EvaluationConfig config)
    {
        if (_model is not TabularModel tabular || config.Method is EvaluationMethod.Blockwise or EvaluationMethod.Rejection or EvaluationMethod.Beam) return (null, null);
        if (config.Method == EvaluationMethod.Tokenwise && config.K != 0 && config.K < tabular.Info.VocabularySize) return (null, null);
        double kl = 0, win = 0;
        foreach (string prompt in _settings.Prompts)
        {
            var space = TabularSpace(tabular, prompt);
            var policy = config.Method switch
            {
                EvaluationMethod.BestOfN => new BestOfN(space.Outcomes, config.N).Probabilities.ToArray(),
                EvaluationMethod.SoftBestOfN => new SoftBestOfN(space.Outcomes, config.N, config.Beta).Probabilities.ToArray(),
                _ => TokenwisePolicy(tabular, prompt, space, config.Beta),
            };
            kl += KlDivergence(policy, space.Outcomes.Probabilities);
            win += WinRate.Exact(space.Outcomes, policy);
        }
        return (kl / _settings.Prompts.Count, win / _settings.Prompts.Count);
    }

    /// <summary>The exact curves of a tabular model for the first prompt: best-of-n (n = 1..64) and pi*_beta.</summary>
    public IReadOnlyList<ExactCurve> ExactCurves()
    {
        if (_model is not TabularModel tabular) return [];
        var space = TabularSpace(tabular, _settings.Prompts[0]);
        var bon = Enumerable.Range(0, 7).Select(i => 1 << i).Select(n =>
        {
            var b = new BestOfN(space.Outcomes, n);
            return new ExactCurvePoint(n, b.Kl, b.WinRate, b.ExpectedReward);
        }).ToArray();
        var frontier = AlignedFamily.Frontier(space.Outcomes, AlignedFamily.LogSpacedBetas(0.02, 50, 40))
            .Select(f => new ExactCurvePoint(f.Beta, f.Kl, f.WinRate, f.ExpectedReward)).ToArray();
        return [new ExactCurve("best-of-n (exact)", bon), new ExactCurve("optimal pi*_beta (exact)", frontier)];
    }

    /// <summary>
    /// The exact optimal policy pi*_beta [M2] of a tabular model at each of <paramref name="betas"/>, for the first prompt
    /// (what token-wise CD with the exact soft value samples); empty where the model is not tabular.
    /// </summary>
    public IReadOnlyList<ExactCurvePoint> ExactFrontier(IReadOnlyList<double> betas)
    {
        ArgumentNullException.ThrowIfNull(betas);
        if (_model is not TabularModel tabular || betas.Count == 0) return [];
        var space = TabularSpace(tabular, _settings.Prompts[0]);
        return AlignedFamily.Frontier(space.Outcomes, betas.ToArray()).Select(f => new ExactCurvePoint(f.Beta, f.Kl, f.WinRate, f.ExpectedReward)).ToArray();
    }

    private sealed record OutputSpace(IReadOnlyList<TabularOutput> Outputs, DiscreteOutcomes Outcomes, int[] PromptTokens);

    private readonly Dictionary<string, OutputSpace> _spaces = [];

    private OutputSpace TabularSpace(TabularModel model, string prompt)
    {
        if (_spaces.TryGetValue(prompt, out var cached)) return cached;
        int[] promptTokens = model.Tokenize(prompt);
        var outputs = model.EnumerateOutputs(promptTokens, _settings.MaxTokens, maxOutputs: 200_000);
        var inputs = outputs.Select(o => new RewardInput { Prompt = prompt, Text = model.Detokenize(o.Tokens), Tokens = o.Tokens, IsFinished = o.EndsWithEos }).ToArray();
        var rewards = new double[inputs.Length];
        _settings.Reward.ScoreChecked(inputs, rewards);
        var space = new OutputSpace(outputs, new DiscreteOutcomes(outputs.Select(o => Math.Exp(o.LogProbability)).ToArray(), rewards), promptTokens);
        return _spaces[prompt] = space;
    }

    /// <summary>pi(y) of token-wise CD over the whole vocabulary: the product of its tilted per-step probabilities.</summary>
    private double[] TokenwisePolicy(TabularModel model, string prompt, OutputSpace space, double beta)
    {
        var value = _settings.ValueFor(beta);
        int v = model.Info.VocabularySize, d = model.Info.HiddenSize;
        var memo = new Dictionary<string, double[]>();
        var policy = new double[space.Outputs.Count];
        for (int i = 0; i < policy.Length; i++)
        {
            var tokens = space.Outputs[i].Tokens;
            double prob = 1;
            for (int t = 0; t < tokens.Length; t++)
            {
                string key = string.Join(',', tokens[..t]);
                if (!memo.TryGetValue(key, out var step))
                {
                    step = TiltedStep(model, prompt, space.PromptTokens, tokens[..t], value, beta, v, d);
                    memo[key] = step;
                }
                prob *= step[tokens[t]];
            }
            policy[i] = prob;
        }
        return policy;
    }

    private static double[] TiltedStep(TabularModel model, string prompt, int[] promptTokens, int[] prefix, IValueFunction value, double beta, int v, int d)
    {
        int state = prefix.Length > 0 ? prefix[^1] : model.StateAfter(promptTokens);
        var candidates = Enumerable.Range(0, v).Where(z => model.NextProbability(state, z) > 0).ToArray();
        var hidden = new float[candidates.Length * d];
        var inputs = new RewardInput[candidates.Length];
        for (int j = 0; j < candidates.Length; j++)
        {
            int z = candidates[j];
            bool stop = model.Info.IsStop(z);
            hidden[j * d + (stop ? state : z)] = 1f; // the session's one-hot hidden state after prefix + z (stop: the prefix's)
            int[] extended = [.. prefix, z];
            inputs[j] = new RewardInput { Prompt = prompt, PromptTokens = promptTokens, Tokens = extended, Text = model.Detokenize(extended), IsFinished = stop };
        }
        var values = new double[candidates.Length];
        value.Evaluate(value.NeedsInputs ? inputs : null, hidden, candidates.Length, values);
        var logits = candidates.Select((z, j) => Math.Log(model.NextProbability(state, z)) + values[j] / beta).ToArray();
        double max = logits.Max();
        double total = logits.Sum(x => Math.Exp(x - max));
        var step = new double[v];
        for (int j = 0; j < candidates.Length; j++) step[candidates[j]] = Math.Exp(logits[j] - max) / total;
        return step;
    }

    private static double KlDivergence(IReadOnlyList<double> pi, IReadOnlyList<double> p)
    {
        double kl = 0;
        for (int i = 0; i < pi.Count; i++)
            if (pi[i] > 0) kl += pi[i] * Math.Log(pi[i] / p[i]);
        return kl;
    }
}
