using System.Diagnostics;
using System.Threading.Channels;
using Tilt.Engine.Models;
using Tilt.Engine.Strategies;
using Tilt.Kernels;

namespace Tilt.Engine.Decoding;

/// <summary>
/// What a request's step function sees in every hook: the engine's one session (KV moves), this iteration's batch, the
/// model (tokenizer, detokenizer), the kernels and the scheduler's prompt loading (prompt cache).
/// </summary>
internal sealed class StepContext
{
    public required IDecodingSession Session { get; init; }
    public required StepBatch Batch { get; init; }
    public required ILanguageModel Model { get; init; }
    public required PromptCache Prompts { get; init; }

    public ModelInfo Info => Model.Info;
    public int Vocab => Model.Info.VocabularySize;
    public int Hidden => Model.Info.HiddenSize;

    /// <summary>Wall-clock time of this iteration's decode call (zero when there was none).</summary>
    public TimeSpan LastDecode { get; set; }

    /// <summary>Hands over a free sequence for the prompt cache, or null when none is spare.</summary>
    public required Func<int?> SpareSequence { get; init; }

    /// <summary>
    /// Frees one of a run's sequences now (its KV cells are removed and the sequence can be admitted to another request at
    /// the next iteration): early rejection gives back what it stops decoding.
    /// </summary>
    public required Action<RequestRun, int> ReleaseSequence { get; init; }

    /// <summary>Gives a run <c>count</c> more free sequences if that many are free now (true), else nothing (false).</summary>
    public required Func<RequestRun, int, bool> AcquireSequences { get; init; }

    /// <summary>
    /// Sends a run that cannot get its sequences back (others are waiting) to the end of the queue: at the end of this
    /// iteration it gives back every sequence it holds and is admitted again, with a full set, when its turn comes. Without
    /// this, a run holding a few sequences and a queued request needing them would wait for each other.
    /// </summary>
    public required Action<RequestRun> Requeue { get; init; }
}

/// <summary>
/// One admitted request: the skeleton every strategy shares (prompt, sequences, events, deadline, cancellation) with the
/// strategy as its step function. The scheduler calls, on its loop thread, once per iteration and in this order:
/// <see cref="Prepare"/> (prompt loading and KV moves; the only hook that may prefill), <see cref="Plan"/> (tokens to
/// decode), then after the one decode <see cref="Score"/> (values to evaluate), <see cref="Propose"/> (rows to sample) and
/// <see cref="Advance"/> (consume the sampled tokens, emit events, move KV). A run that sets <see cref="IsDone"/> has its
/// sequences released at the end of the iteration.
/// </summary>
internal abstract class RequestRun
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

    /// <summary>Gives one sequence back before the run ends (the scheduler has already removed its KV).</summary>
    public void Forget(int sequence) => Sequences = Sequences.Where(s => s != sequence).ToArray();

    /// <summary>True when the run asked to wait in the queue again for a full set of sequences.</summary>
    public bool RequeueRequested { get; set; }

    /// <summary>Takes more sequences mid-run (their KV is empty).</summary>
    public void Adopt(IEnumerable<int> sequences) => Sequences = [.. Sequences, .. sequences];

    /// <summary>The forced prefix of the response (already part of <see cref="PromptTokens"/>' KV): tokens and text.</summary>
    public int[] ForcedTokens { get; init; } = [];

    public string ForcedText { get; init; } = "";

    public void Admit(int[] sequences, long iteration)
    {
        Sequences = sequences;
        AdmittedIteration = iteration;
        AdmittedAt = Clock.Elapsed;
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

    protected void Emit(AlignEvent e)
    {
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
            foreach (int s in Sequences) context.Session.RemoveSequence(s);
        var prompt = context.Prompts.Load(Sequences[0], PromptTokens, context.SpareSequence);
        for (int i = 1; i <= forks; i++) context.Session.CopySequence(Sequences[0], Sequences[i]);
        return prompt;
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

    /// <summary>True when the request's deadline (measured from submission) has passed.</summary>
    protected bool PastDeadline =>
        Request.Options is AlignOptions { Deadline: { } limit } && Clock.Elapsed >= limit;
}
