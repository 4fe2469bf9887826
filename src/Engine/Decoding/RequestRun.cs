using Tilt.Engine.Rewards;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Tilt.Engine.Models;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

/// <summary>
/// What a request's step function sees in every hook: the engine's one session (KV moves within the run's own sequences),
/// this iteration's batch, the model (tokenizer, detokenizer) and the scheduler's prompt loading (prompt cache). It holds
/// no way to take or free sequences: a run says what it needs (<see cref="RequestRun.SequencesWanted"/>,
/// <see cref="RequestRun.Release"/>) and the scheduler decides.
/// </summary>
internal sealed class StepContext
{
    /// <summary>The last decode's rows (read only).</summary>
    public required StepOutputs Outputs { get; init; }

    /// <summary>KV moves the hook plans; the scheduler applies them after the hook.</summary>
    public required KvMoves Kv { get; init; }
    public required StepBatch Batch { get; init; }
    public required ILanguageModel Model { get; init; }
    public required PromptCache Prompts { get; init; }

    /// <summary>Where rewards run, off the scheduler's thread (<see cref="RequestRun.ScoreAside"/>).</summary>
    public required ScoringStage Scoring { get; init; }

    public ModelInfo Info => Model.Info;
    public int Vocab => Model.Info.VocabularySize;
    public int Hidden => Model.Info.HiddenSize;

    /// <summary>Wall-clock time of this iteration's decode call (zero when there was none).</summary>
    public TimeSpan LastDecode { get; set; }

}

/// <summary>
/// One admitted request: the skeleton every strategy shares (prompt, sequences, events, deadline, cancellation) with the
/// strategy as its step function. The scheduler calls, on its loop thread, once per iteration and in this order:
/// <see cref="Prepare"/> (prompt loading and KV moves; the only hook that may prefill), <see cref="Plan"/> (tokens to
/// decode), then after the one decode <see cref="Score"/> (values to evaluate), <see cref="Propose"/> (rows to sample) and
/// <see cref="Advance"/> (consume the sampled tokens, emit events, move KV). A run that sets <see cref="IsDone"/> has its
/// sequences released at the end of the iteration.
/// </summary>
internal abstract partial class RequestRun
{
    private readonly Channel<AlignEvent> _events = Channel.CreateUnbounded<AlignEvent>(new UnboundedChannelOptions
    {
        SingleReader = true,
        SingleWriter = true,
        AllowSynchronousContinuations = false,
    });

    protected RequestRun(DecodingRequest request, int[] promptTokens, Stopwatch clock, CancellationToken cancellation)
    {
        Request = request;
        Stops = StopMatcher.For(request.Options.Stop);
        PromptTokens = promptTokens;
        Clock = clock;
        Cancellation = cancellation;
    }

    public DecodingRequest Request { get; }

    /// <summary>The request's stop strings and stop token ids, compiled; null when it has none.</summary>
    protected StopMatcher? Stops { get; }

    /// <summary>True when the request asked for per-token log-probabilities (with or without alternatives).</summary>
    protected bool WantsLogprobs => Request.Options.Logprobs || Request.Options.TopLogprobs > 0;

    /// <summary>The prompt's tokens (BOS first when the model adds one).</summary>
    public int[] PromptTokens { get; }

    /// <summary>Started when the request was submitted: deadlines and timings count queueing too.</summary>
    public Stopwatch Clock { get; }

    public CancellationToken Cancellation { get; }

    /// <summary>Sequences this run needs at once; admitted only when that many are free.</summary>
    public abstract int SequencesNeeded { get; }

    /// <summary>The engine sequences this run owns (set at admission).</summary>
    public int[] Sequences { get; private set; } = [];

    /// <summary>True when every output is complete (or the deadline ended the request).</summary>
    public bool IsDone { get; protected set; }

    /// <summary>The events of this request, read by its <see cref="DecodingEngine.StreamAsync"/> caller.</summary>
    public ChannelReader<AlignEvent> Events => _events.Reader;

    /// <summary>Live sequences this iteration (for the engine's status).</summary>
    public virtual int LiveSequences => IsDone ? 0 : Sequences.Length;

    /// <summary>The scheduler's iteration count when the request was submitted, and when it was admitted.</summary>
    public long SubmittedIteration { get; set; }

    public long AdmittedIteration { get; private set; }

    /// <summary>Time from submission to admission.</summary>
    public TimeSpan AdmittedAt { get; private set; }

    /// <summary>
    /// Sequences the run asks for before its next <see cref="Prepare"/> (0: none). The scheduler grants them when that many
    /// are free and nobody waits in the queue; otherwise it sends the run back to the end of the queue, where it gives up
    /// every sequence and is admitted again with a full set (a run holding a few sequences and a queued request needing
    /// them would otherwise wait for each other). Early rejection asks for back what its previous output gave away.
    /// </summary>
    public int SequencesWanted { get; protected set; }

    /// <summary>Sequences the run stopped using this iteration, freed by the scheduler after the hook (KV removed).</summary>
    public List<int> Released { get; } = [];

    /// <summary>Gives one of the run's sequences back: the scheduler removes its KV after this hook and may admit it to another
    /// request at the next iteration.</summary>
    protected void Release(int sequence)
    {
        if (!Sequences.Contains(sequence)) throw new InvalidOperationException($"sequence {sequence} does not belong to the request");
        Released.Add(sequence);
    }

    /// <summary>The scheduler's side of <see cref="Release"/> and <see cref="SequencesWanted"/>: the run's sequences now.</summary>
    public void Reassign(int[] sequences)
    {
        Sequences = sequences;
        SequencesWanted = 0;
    }

    /// <summary>The forced prefix of the response (already part of <see cref="PromptTokens"/>' KV): tokens and text.</summary>
    public int[] ForcedTokens { get; init; } = [];

    public string ForcedText { get; init; } = "";

    /// <summary>The request's span (<see cref="EngineTelemetry"/>) when something listens; the scheduler thread adds its events.</summary>
    public Activity? Activity { get; set; }

    public void Admit(int[] sequences, long iteration)
    {
        Sequences = sequences;
        SequencesWanted = 0;
        AdmittedIteration = iteration;
        AdmittedAt = Clock.Elapsed;
        Activity?.AddEvent(new ActivityEvent("tilt.admitted", tags: new ActivityTagsCollection
        {
            ["tilt.queued_iterations"] = iteration - SubmittedIteration,
            ["tilt.sequences"] = sequences.Length,
        }));
    }

    public abstract void Prepare(StepContext context);

    public abstract void Plan(StepContext context);

    public virtual void Score(StepContext context)
    {
    }

    public abstract void Propose(StepContext context);

    public abstract void Advance(StepContext context);

    /// <summary>Ends the event stream (with the failure, cancellation or null on success).</summary>
    public void Complete(Exception? error = null) => _events.Writer.TryComplete(error);

    /// <summary>
    /// False when the caller wants only the results (<see cref="DecodingEngine.RunAsync"/>): per-token text events are then
    /// not written. Each event wakes the reader on a thread-pool thread, and on a machine whose cores llama.cpp's workers
    /// fill, that thread preempts a worker in the middle of the next decode (measured: 8,303 context switches against the
    /// raw loop's 992 for the same 110M run, 70 % of them on thread-pool workers).
    /// </summary>
    public bool StreamsText { get; set; } = true;

    protected void Emit(AlignEvent e)
    {
        if (!StreamsText && e is TextAccepted) return;
        // A forced prefix is streamed as the first accepted text of every output.
        if (ForcedTokens.Length > 0 && e is TextAccepted { Sample: var s } && s != _forcedSample)
        {
            _forcedSample = s;
            _events.Writer.TryWrite(new TextAccepted(s, ForcedTokens, ForcedText, 0) { LogProb = 0 });
        }
        _events.Writer.TryWrite(e);
    }

    private int _forcedSample = -1;

    /// <summary>
    /// Puts the prompt into the run's sequences for a new output: removes what an earlier output left (when
    /// <paramref name="clear"/>), loads the prompt into Sequences[0] (a prompt-cache copy or a prefill) and forks it to the
    /// next <paramref name="forks"/> sequences.
    /// </summary>
    protected PromptState LoadPrompt(StepContext context, bool clear, int forks)
    {
        if (clear)
            foreach (int s in Sequences) context.Kv.Clear(s);
        // The scheduler's prompt cache applies the planned clears before it loads the prompt.
        var prompt = context.Prompts.Load(Sequences[0], PromptTokens);
        for (int i = 1; i <= forks; i++) context.Kv.Copy(Sequences[0], Sequences[i]);
        Activity?.AddEvent(new ActivityEvent("tilt.prefill", tags: new ActivityTagsCollection
        {
            ["tilt.prompt_tokens"] = PromptTokens.Length,
            ["tilt.cached_prompt_tokens"] = prompt.CachedTokens,
            ["tilt.forks"] = forks,
        }));
        return prompt;
    }

    /// <summary>
    /// The rollout of <paramref name="n"/> candidates drawn from p after the prompt, one per sequence the run holds, with the
    /// request's own sampling, seed, stops and log-probability settings; candidate i draws from RNG row
    /// <paramref name="firstRow"/> + i, so a request's draws never depend on what shares the batch.
    /// </summary>
    protected ContinuationBatch.Settings CandidatesFromPrompt(int n, uint firstRow, bool decodeLastToken)
    {
        var o = Request.Options;
        return new ContinuationBatch.Settings
        {
            Candidates = n,
            Sequences = Sequences.ToArray(),
            Rows = Enumerable.Range(0, n).Select(i => firstRow + (uint)i).ToArray(),
            MaxTokens = o.MaxTokens,
            Sampling = o.Sampling,
            Seed = o.Seed,
            Request = o.RequestId,
            DecodeLastToken = decodeLastToken,
            Stop = Stops,
            Logprobs = o.Logprobs,
            TopLogprobs = o.TopLogprobs,
        };
    }

    /// <summary>Emits a finished output with what the skeleton knows of the request (prompt, queueing).</summary>
    protected void EmitResult(AlignedSample sample) => Emit(new SampleCompleted(sample with
    {
        Text = ForcedText + sample.Text,
        Tokens = ForcedTokens.Length == 0 ? sample.Tokens : [.. ForcedTokens, .. sample.Tokens],
        TokenLogProbs = sample.TokenLogProbs is not { } lps || ForcedTokens.Length == 0 ? sample.TokenLogProbs
            : [.. ForcedTokens.Select(t => new TokenLogProb(t, double.NaN)), .. lps],
        ForcedTokens = ForcedTokens.Length,
        Candidates = ForcedTokens.Length == 0 ? sample.Candidates
            : [.. sample.Candidates.Select(c => c with { Text = ForcedText + c.Text, Tokens = [.. ForcedTokens, .. c.Tokens] })],
        PromptTokens = PromptTokens.Length - ForcedTokens.Length,
        QueuedIterations = AdmittedIteration - SubmittedIteration,
        Timings = sample.Timings with { Queued = AdmittedAt },
    }));

    /// <summary>
    /// Blockwise CD's and beam search's rule for blocks that ended the text: their score is the reward of the finished text
    /// (one call for all of them), not the value of a prefix; then every score must be finite. <paramref name="text"/> and
    /// <paramref name="tokens"/> give candidate i's whole output if its block were accepted.
    /// </summary>
    protected static void ScoreFinishedBlocks(IReward reward, string prompt, ContinuationBatch rollout, int count, int d,
        Func<int, string> text, Func<int, int[]> tokens, double[] scores, string valueName)
    {
        var finished = Enumerable.Range(0, count).Where(i => rollout.Stopped[i]).ToArray();
        if (finished.Length > 0)
        {
            var candidates = finished.Select(i => new RewardInput
            {
                Prompt = prompt, Text = text(i), Tokens = tokens(i), IsFinished = true, FinalHidden = rollout.FinalHidden.AsMemory(i * d, d).ToArray(),
            }).ToArray();
            var rewards = new double[finished.Length];
            reward.ScoreChecked(candidates, rewards);
            for (int j = 0; j < finished.Length; j++) scores[finished[j]] = rewards[j];
        }
        for (int i = 0; i < count; i++)
            if (!double.IsFinite(scores[i]))
                throw new TiltException($"value {valueName} returned {scores[i]} for candidate block {i}");
    }

    /// <summary>
    /// Counts the output just emitted (<paramref name="sample"/> is the run's output index); true when another one follows,
    /// false when the request is done: the deadline cut this one, every output asked for exists, or the deadline passed.
    /// </summary>
    protected bool NextOutput(ref int sample, bool cut)
    {
        sample++;
        int wanted = Request.Options is AlignOptions a ? a.Samples : 1;
        if (!cut && sample < wanted && !PastDeadline) return true;
        IsDone = true;
        return false;
    }

    /// <summary>True when the request's deadline (measured from submission) has passed.</summary>
    protected bool PastDeadline =>
        Request.Options is AlignOptions { Deadline: { } limit } && Clock.Elapsed >= limit;
}
