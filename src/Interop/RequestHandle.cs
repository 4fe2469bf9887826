using System.Diagnostics;
using System.Runtime.InteropServices;
using Tilt.Engine.Rewards;
using Tilt.Engine.Sampling;
using Tilt.Engine.Strategies;
using Tilt.Engine.Values;

namespace Tilt.Interop;

/// <summary>
/// One C request: validated options, a single run on the caller's thread with its events streamed to a C callback,
/// and the completed outputs kept for the tilt_request_output_* calls.
/// </summary>
internal sealed class RequestHandle : HandleObject
{
    private static int _running;

    // A 1-byte empty string for events without text (the header promises text is never NULL). Never freed.
    private static readonly unsafe byte* EmptyText = (byte*)NativeMemory.AllocZeroed(1);

    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _cancel = new();
    private readonly List<Output> _outputs = [];
    private readonly string _prompt;
    private readonly Strategy _strategy;
    private readonly AlignOptions? _aligned;
    private readonly GenerationOptions? _generation;
    private readonly IReward? _reward;
    private readonly IValueFunction? _value;
    private RunState _state;
    private bool _freed;
    private int? _streamStop;
    private nint _onEvent;
    private nint _userData;

    private RequestHandle(ModelHandle model, string prompt, Strategy strategy, AlignOptions? aligned, GenerationOptions? generation,
        IReward? reward, IValueFunction? value)
    {
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
        string fingerprint = model.Model.Info.Fingerprint;
        if (reward?.ModelFingerprint is { } rf && rf != fingerprint)
            throw StatusException.InvalidArgument("reward reads the hidden states of another model than this request's (a head trained for another model)");
        if (value is not null && value.ModelFingerprint != fingerprint)
            throw StatusException.InvalidArgument("value was loaded for another model than this request's");

        if (strategy == Strategy.Sample)
        {
            var generation = RequestOptionsMapping.ToGeneration(options);
            if (reward is { Reward.NeedsHiddenState: true })
                throw StatusException.InvalidArgument(
                    $"reward '{reward.Reward.Description}' reads hidden states, which TILT_STRATEGY_SAMPLE does not keep; use an aligned strategy");
            return new RequestHandle(model, prompt, strategy, null, generation, reward?.Reward, null);
        }

        var aligned = RequestOptionsMapping.ToAligned(options, strategy);
        if (reward is null)
            throw StatusException.InvalidArgument("reward is NULL; the aligned strategies need one (only TILT_STRATEGY_SAMPLE runs without)");
        return new RequestHandle(model, prompt, strategy, aligned, null, reward.Reward, value?.Value);
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
        if (Model.RunGate.IsHeldByCurrentThread)
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
        try
        {
            using (Model.RunGate.EnterScope())
            {
                _cancel.Token.ThrowIfCancellationRequested();
                CallerThreadContext.Run(DriveAsync);
            }
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

    private Task DriveAsync() => _strategy == Strategy.Sample ? SampleAsync() : AlignAsync();

    private async Task AlignAsync()
    {
        var model = Model.Model;
        var kernels = Model.Kernels;
        var token = _cancel.Token;
        var reward = _reward!;
        IAsyncEnumerable<AlignEvent> events = _aligned switch
        {
            BestOfNOptions b => new BestOfNSampler(model, kernels, reward).StreamAsync(_prompt, b, token),
            TokenwiseOptions t => new TokenwiseDecoder(model, kernels, _value ?? new PrefixRewardValue(reward), reward).StreamAsync(_prompt, t, token),
            BlockwiseOptions b => new BlockwiseDecoder(model, kernels, _value ?? new PrefixRewardValue(reward), reward).StreamAsync(_prompt, b, token),
            _ => throw new UnreachableException(),
        };

        await foreach (var e in events)
        {
            bool goOn = e switch
            {
                TextAccepted t => EmitText(t.Sample, t.Tokens, t.TextDelta, t.RunningKl),
                CandidatesScored c => EmitScores(c),
                StepCompleted s => EmitStep(s),
                SampleCompleted d => Complete(Output.FromAligned(d.Result)),
                _ => true,
            };
            if (!goOn) return;
        }
    }

    private async Task SampleAsync()
    {
        var options = _generation!;
        var clock = Stopwatch.StartNew();
        var firstText = new double[options.Samples];
        Array.Fill(firstText, double.NaN);
        var sampler = new BaseSampler(Model.Model, Model.Kernels);
        await foreach (var e in sampler.StreamAsync(_prompt, options, _cancel.Token))
        {
            bool goOn = true;
            switch (e)
            {
                case TokenGenerated t:
                    if (double.IsNaN(firstText[t.Sample])) firstText[t.Sample] = clock.Elapsed.TotalMilliseconds;
                    goOn = EmitText(t.Sample, [t.Token], t.TextDelta, 0);
                    break;
                case SampleFinished f:
                    double reward = _reward is null
                        ? double.NaN
                        : _reward.Score(new RewardInput { Prompt = _prompt, Text = f.Sample.Text, Tokens = f.Sample.Tokens, IsFinished = f.Sample.Finish == FinishReason.Eos });
                    goOn = Complete(Output.FromSample(f.Sample, reward, _reward is not null, firstText[f.Sample.Index], clock.Elapsed.TotalMilliseconds));
                    break;
                case GenerationCompleted c:
                    foreach (var output in _outputs) output.SetRequestTimings(c.Timings);
                    break;
            }
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
