using System.Diagnostics;
using Tilt.Engine.Rewards;
using Tilt.Engine.Statistics;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// Plain sampling from p: K samples that share the prompt's KV, each streamed token by token. Sample i draws from RNG row
/// i, so its text does not depend on K. Finished samples release nothing early (they share one run); the reward, when the
/// request has one, only scores the outputs.
/// </summary>
internal sealed class GenerationRun : RequestRun
{
    private readonly GenerationOptions _options;
    private ContinuationBatch? _rollout;
    private PromptState? _prompt;
    private readonly bool[] _reported;
    private TimeSpan _prefill;
    private readonly TimeSpan?[] _first;
    private readonly int _stride;                  // hidden states every _stride tokens (0: none)
    private readonly List<int>[] _positions = [];   // [samples] prefix lengths recorded
    private readonly List<float[]>[] _states = [];  // [samples] their hidden states

    public GenerationRun(DecodingRequest request, int[] promptTokens, Stopwatch clock, CancellationToken cancellation)
        : base(request, promptTokens, clock, cancellation)
    {
        _options = (GenerationOptions)request.Options;
        _reported = new bool[_options.Samples];
        _first = new TimeSpan?[_options.Samples];
        _stride = _options.HiddenStateStride;
        if (_stride > 0)
        {
            _positions = [.. Enumerable.Range(0, _options.Samples).Select(_ => new List<int>())];
            _states = [.. Enumerable.Range(0, _options.Samples).Select(_ => new List<float[]>())];
        }
    }

    public override int SequencesNeeded => _options.Samples;

    public override void Prepare(StepContext context)
    {
        if (_prompt is not null) return;
        _prompt = LoadPrompt(context, clear: false, forks: Sequences.Length - 1);
        _prefill = Clock.Elapsed;
        _rollout = new ContinuationBatch(context.Model, _options.Samples);
        // A sample cut by the limit has its last token decoded, so its whole text has a hidden state too.
        _rollout.Start(CandidatesFromPrompt(_options.Samples, _options.FirstRow, decodeLastToken: _stride > 0), _prompt.Logits, _prompt.Hidden);
        if (_stride > 0)
            for (int i = 0; i < _options.Samples; i++) Record(i, 0, _prompt.Hidden);
    }

    public override void Plan(StepContext context) => _rollout?.Plan(context.Batch);

    public override void Score(StepContext context)
    {
        var rollout = _rollout;
        if (rollout is null) return;
        rollout.Collect(context);
        if (_stride == 0) return;
        int d = context.Hidden;
        for (int i = 0; i < _options.Samples; i++)
        {
            // The stop token is never decoded, so a decoded row is always the state of a text prefix.
            int length = rollout.Tokens[i].Count;
            if (rollout.DecodedNow[i] && length % _stride == 0) Record(i, length, rollout.FinalHidden.AsSpan(i * d, d));
        }
    }

    private void Record(int sample, int position, ReadOnlySpan<float> hidden)
    {
        _positions[sample].Add(position);
        _states[sample].Add(hidden.ToArray());
    }

    public override void Propose(StepContext context) => _rollout?.Propose(context);

    public override void Advance(StepContext context)
    {
        var rollout = _rollout!;
        rollout.Advance(context.Batch);
        for (int i = 0; i < _options.Samples; i++)
        {
            if (!rollout.Stepped[i]) continue;
            _first[i] ??= Clock.Elapsed;
            // The last token of a sample also carries what was held back (a possible stop's start, incomplete UTF-8).
            string delta = rollout.LastDelta[i];
            if (Complete(rollout, i))
            {
                rollout.FinishText(i);
                delta += rollout.UnstreamedText(i);
            }
            Emit(new TextAccepted(i, [rollout.Tokens[i][^1]], delta, 0)
            {
                LogProb = rollout.LastTokenLogProb[i],
                TokenLogProbs = WantsLogprobs ? [rollout.TokenLogProbs[i][^1]] : null,
            });
        }
        // A sample is complete once it stopped or reached the limit (its last token needs no decode, unless hidden states
        // are recorded: then once the rollout is done with it).
        for (int i = 0; i < _options.Samples; i++)
        {
            bool reportable = _stride > 0 ? rollout.IsDone(i) : Complete(rollout, i);
            if (_reported[i] || !reportable) continue;
            _reported[i] = true;
            EmitResult(Result(i, rollout));
        }
        if (rollout.IsFinished) IsDone = true;
    }

    /// <summary>The sample's text is complete (stopped or at the limit); with hidden states its last token may still be decoded.</summary>
    private bool Complete(ContinuationBatch rollout, int i) => rollout.Stopped[i] || rollout.Tokens[i].Count >= _options.MaxTokens;

    private AlignedSample Result(int i, ContinuationBatch rollout)
    {
        string text = rollout.FinishText(i);
        int[] tokens = rollout.Tokens[i].ToArray();
        bool eos = rollout.Stopped[i];
        double reward = double.NaN;
        if (Request.Reward is { } r)
        {
            var scores = new double[1];
            r.ScoreChecked([new RewardInput { Prompt = Request.Prompt, Text = text, Tokens = tokens, IsFinished = eos }], scores);
            reward = scores[0];
        }
        double logq = rollout.SamplerLogProb[i], logp = rollout.LogProb[i];
        return new AlignedSample(i, text, tokens, reward, logp, new KlReport(logq - logp, KlMethod.SamplerLogRatio), null,
            rollout.StoppedByRequest[i] ? AlignFinish.Stop : eos ? AlignFinish.Eos : AlignFinish.Length, tokens.Length,
            new AlignTimings(_prefill, _first[i] ?? Clock.Elapsed, Clock.Elapsed, rollout.DecodeCalls) { ModelTime = rollout.ModelTime }, [])
        {
            SamplerLogProb = logq,
            CachedPromptTokens = _prompt!.CachedTokens,
            HiddenPositions = _stride > 0 ? _positions[i].ToArray() : [],
            HiddenStates = _stride > 0 ? _states[i].SelectMany(h => h).ToArray() : ReadOnlyMemory<float>.Empty,
            FinalHidden = _stride > 0 ? rollout.FinalHidden.AsSpan(i * _prompt.Hidden.Length, _prompt.Hidden.Length).ToArray() : ReadOnlyMemory<float>.Empty,
            TokenLogProbs = WantsLogprobs ? rollout.TokenLogProbs[i].ToArray() : null,
        };
    }
}
