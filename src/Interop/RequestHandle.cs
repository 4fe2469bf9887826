using System.Diagnostics;
using System.Runtime.InteropServices;
using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Engine.Requests;

namespace Tilt.Interop;

/// <summary>
/// One C request: validated options, a single run on the caller's thread with its events streamed to a C callback,
/// and the completed outputs kept for the tilt_request_output_* calls.
/// </summary>
internal sealed class RequestHandle : HandleObject
{
    private static int _running;

    // Models with a run on this thread (nested runs of another model from a callback are allowed).
    [ThreadStatic] private static HashSet<ModelHandle>? t_runningModels;

    // A 1-byte empty string for events without text (the header promises text is never NULL). Never freed.
    private static readonly unsafe byte* EmptyText = (byte*)NativeMemory.AllocZeroed(1);

    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _cancel = new();
    private readonly List<Output> _outputs = [];
    private readonly string _prompt;
    private readonly Strategy _strategy;
    private readonly AlignOptions? _aligned;
    private readonly GenerationOptions? _generation;
    private readonly ScoringOptions? _scoring;
    private readonly int _top;   // alternatives per token the outputs keep (0: none)
    private readonly IReward? _reward;
    private readonly IValueFunction? _value;
    private RunState _state;
    private bool _freed;
    private readonly int? _threads; // asked-for llama.cpp threads; null = the model engine's
    private int? _streamStop;
    private nint _onEvent;
    private nint _userData;

    private RequestHandle(ModelHandle model, string prompt, Strategy strategy, AlignOptions? aligned, GenerationOptions? generation,
        IReward? reward, IValueFunction? value, ScoringOptions? scoring, int top, int? threads)
    {
        _threads = threads;
        _scoring = scoring;
        _top = top;
        Model = model;
        _prompt = prompt;
        _strategy = strategy;
        _aligned = aligned;
        _generation = generation;
        _reward = reward;
        _value = value;
    }

    private enum RunState
    {
        Created,
        Running,
        Done,
    }

    /// <summary>Requests whose run has not returned yet, over the whole process.</summary>
    public static int Running => Volatile.Read(ref _running);

    public override string KindName => "tilt_request";

    public ModelHandle Model { get; }

    /// <summary>Validates everything a run needs, so that a run fails only for reasons found while running.</summary>
    public static RequestHandle Create(ModelHandle model, string prompt, in TiltRequestOptions options, RewardHandle? reward, ValueHandle? value)
    {
        var strategy = RequestOptionsMapping.ReadStrategy(options);
        int? threads = RequestOptionsMapping.ReadThreads(options);
        var (_, top) = RequestOptionsMapping.ReadLogprobs(options, strategy);
        var stop = RequestOptionsMapping.ReadStop(options);
        if (RequestOptionsMapping.ToScoring(options, strategy) is { } scoring)
        {
            if (stop is not null) throw StatusException.InvalidArgument("stop sequences do not apply to TILT_STRATEGY_SCORE: nothing is generated");
            return new RequestHandle(model, prompt, strategy, null, null, null, null, scoring, top, threads);
        }
        if (stop is not null)
            foreach (int id in stop.TokenIds)
                if (id >= model.Model.Info.VocabularySize)
                    throw StatusException.InvalidArgument($"tilt_request_options.stop_token_ids: {id} is outside the vocabulary (0..{model.Model.Info.VocabularySize - 1})");
        string fingerprint = model.Model.Info.Fingerprint;
        if (reward?.ModelFingerprint is { } rf && rf != fingerprint)
            throw StatusException.InvalidArgument("reward reads the hidden states of another model than this request's (a head trained for another model)");
        if (value is not null && value.ModelFingerprint != fingerprint)
            throw StatusException.InvalidArgument("value was loaded for another model than this request's");

        if (strategy == Strategy.Sample)
        {
            var generation = RequestOptionsMapping.ToGeneration(options) with { Stop = stop };
            if (reward is { Reward.NeedsHiddenState: true })
                throw StatusException.InvalidArgument(
                    $"reward '{reward.Reward.Description}' reads hidden states, which TILT_STRATEGY_SAMPLE does not keep; use an aligned strategy");
            return new RequestHandle(model, prompt, strategy, null, generation, reward?.Reward, null, null, top, threads);
        }

        var aligned = RequestOptionsMapping.ToAligned(options, strategy) with { Stop = stop };
        if (reward is null)
            throw StatusException.InvalidArgument("reward is NULL; the aligned strategies need one (only TILT_STRATEGY_SAMPLE runs without)");
        return new RequestHandle(model, prompt, strategy, aligned, null, reward.Reward, value?.Value, null, top, threads);
    }

    public void Cancel() => _cancel.Cancel();

    public override void OnFreed()
    {
        bool running;
        lock (_gate)
        {
            _freed = true;
            running = _state == RunState.Running;
        }
        // A running request is released by its run when it returns; the cancellation makes that soon.
        if (running) _cancel.Cancel();
        else Model.Release();
    }

    /// <summary>Runs to completion on this thread; returns the status (cancellation is a status, not an exception).</summary>
    public unsafe int Run(delegate* unmanaged[Cdecl]<void*, TiltEvent*, int> onEvent, void* userData)
    {
        // A callback of a run waits for this thread; a second run of the same model from it could wait for itself (its
        // host reward is scored on this thread, which would be busy inside the nested run).
        if (t_runningModels?.Contains(Model) == true)
            throw StatusException.BadState("tilt_request_run was called from a callback of a run on the same model; it would wait for itself");
        lock (_gate)
        {
            if (_state == RunState.Running) throw StatusException.BadState("the request is running");
            if (_state == RunState.Done) throw StatusException.BadState("the request ran already; a request runs once (create another)");
            _state = RunState.Running;
        }
        Interlocked.Increment(ref _running);
        _onEvent = (nint)onEvent;
        _userData = (nint)userData;
        (t_runningModels ??= []).Add(Model);
        try
        {
            _cancel.Token.ThrowIfCancellationRequested();
            CallerThreadContext.Run(DriveAsync);
            return _streamStop is { } code
                ? ErrorSink.Fail(TiltStatus.Cancelled, $"cancelled: the stream callback returned {code} ({_outputs.Count} outputs were complete)")
                : TiltStatus.Ok;
        }
        catch (OperationCanceledException) when (_cancel.IsCancellationRequested)
        {
            string why = _freed ? "the request was freed while running" : "cancelled by tilt_request_cancel";
            return ErrorSink.Fail(TiltStatus.Cancelled, $"{why} ({_outputs.Count} outputs were complete)");
        }
        finally
        {
            t_runningModels.Remove(Model);
            _outputs.Sort((a, b) => a.Index.CompareTo(b.Index));
            bool release;
            lock (_gate)
            {
                _state = RunState.Done;
                release = _freed;
            }
            Interlocked.Decrement(ref _running);
            if (release) Model.Release();
        }
    }

    public int OutputCount
    {
        get
        {
            EnsureReadable();
            return _outputs.Count;
        }
    }

    public Output GetOutput(int index)
    {
        EnsureReadable();
        if ((uint)index >= (uint)_outputs.Count)
            throw StatusException.InvalidArgument($"index {index} is out of range: the request has {_outputs.Count} outputs");
        return _outputs[index];
    }

    private void EnsureReadable()
    {
        lock (_gate)
        {
            if (_state == RunState.Created) throw StatusException.BadState("the request has not run yet (call tilt_request_run)");
            if (_state == RunState.Running) throw StatusException.BadState("the request is running; read its outputs after tilt_request_run returns");
        }
    }

    /// <summary>
    /// Submits the request to the model's shared engine (or, when it cannot fit there, to an engine of its own) and
    /// relays its events to the stream callback on this thread. A host reward callback is also called on this thread:
    /// the engine's scheduler hands each scoring call over and waits for it.
    /// </summary>
    private async Task DriveAsync()
    {
        var caller = SynchronizationContext.Current!;
        IReward? reward = _reward is CallbackReward ? new CallerThreadReward(_reward, caller) : _reward;
        var request = new DecodingRequest
        {
            Prompt = _prompt,
            Options = (DecodingOptions?)_aligned ?? (DecodingOptions?)_scoring ?? _generation!,
            Reward = reward,
            Value = _value,
        };
        var engine = Model.Engine;
        bool ownThreads = _threads is { } asked && asked != (engine.Options.Threads ?? CpuTopology.DefaultThreads);
        var events = !ownThreads && engine.CanServe(request, out _)
            ? engine.StreamAsync(request, _cancel.Token)
            : DecodingEngine.StreamOnOwnEngine(Model.Model, Model.Kernels, request,
                new ContextSettings(_threads ?? engine.Options.Threads, engine.Options.KvCacheType), _cancel.Token);
        bool sample = _strategy == Strategy.Sample;
        await foreach (var e in events)
        {
            bool goOn = e switch
            {
                TextAccepted t => EmitText(t.Sample, t.Tokens, t.TextDelta, t.RunningKl),
                CandidatesScored c => EmitScores(c),
                StepCompleted s => EmitStep(s),
                SampleCompleted d => Complete((sample ? Output.FromSample(d.Result, _reward is not null) : Output.FromAligned(d.Result))
                    .WithLogProbs(d.Result.TokenLogProbs, _top)),
                ScoreCompleted d => Complete(Output.FromScore(d.Result).WithLogProbs(d.Result.TokenLogProbs, _top)),
                _ => true,
            };
            if (!goOn) return;
        }
    }

    private bool Complete(Output output)
    {
        _outputs.Add(output);
        var ev = NewEvent(EventKind.OutputDone, output.Index);
        ev.Reward = output.Info.HasReward != 0 ? output.Info.Reward : double.NaN;
        ev.Kl = output.Info.Kl;
        ev.Finish = output.Info.Finish;
        return Emit(ref ev);
    }

    private unsafe bool EmitText(int sample, IReadOnlyList<int> tokens, string delta, double runningKl)
    {
        if (_onEvent == 0) return true;
        var ev = NewEvent(EventKind.Text, sample);
        byte[] text = Utf8.ToNullTerminated(delta);
        int[] ids = tokens as int[] ?? [.. tokens];
        fixed (byte* t = text)
        fixed (int* p = ids)
        {
            ev.Text = t;
            ev.TextLen = (nuint)(text.Length - 1);
            ev.Tokens = p;
            ev.NTokens = ids.Length;
            ev.RunningKl = runningKl;
            return Emit(ref ev);
        }
    }

    private unsafe bool EmitScores(CandidatesScored scored)
    {
        if (_onEvent == 0) return true;
        var ev = NewEvent(EventKind.CandidatesScored, scored.Sample);
        double[] scores = scored.Scores as double[] ?? [.. scored.Scores];
        fixed (double* s = scores)
        {
            ev.Step = scored.Step;
            ev.Scores = s;
            ev.NScores = scores.Length;
            ev.Chosen = scored.Chosen;
            return Emit(ref ev);
        }
    }

    private bool EmitStep(StepCompleted step)
    {
        if (_onEvent == 0) return true;
        var ev = NewEvent(EventKind.Step, step.Sample);
        ev.Step = step.Step;
        ev.LiveSequences = step.LiveSequences;
        return Emit(ref ev);
    }

    private static unsafe TiltEvent NewEvent(EventKind kind, int sample) => new()
    {
        StructSize = (uint)sizeof(TiltEvent),
        Kind = (int)kind,
        Sample = sample,
        Step = -1,
        Chosen = -1,
        Text = EmptyText,
    };

    /// <summary>Calls the stream callback; false (and the code remembered) when it asks to stop.</summary>
    private unsafe bool Emit(ref TiltEvent ev)
    {
        if (_onEvent == 0) return true;
        var callback = (delegate* unmanaged[Cdecl]<void*, TiltEvent*, int>)_onEvent;
        int code;
        fixed (TiltEvent* p = &ev) code = callback((void*)_userData, p);
        if (code == 0) return true;
        _streamStop = code;
        return false;
    }
}
