using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Tilt.Kernels.Cpu;

namespace Tilt.Kernels.Ilgpu;

/// <summary>
/// The ILGPU backend: "ilgpu-cuda" on a CUDA device, or "ilgpu-cpu" on ILGPU's CPU accelerator (a thread-based GPU
/// simulator for tests only). Kernels are compiled once here and kept as delegates; device buffers grow with the
/// largest shapes seen. Each call uploads its inputs, launches on one stream and synchronizes once before reading
/// the results back. Use from one thread at a time.
/// </summary>
internal sealed class IlgpuStepKernels : FusedStepKernels
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly AcceleratorStream _stream;
    private readonly int _groupSize;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>,
        ArrayView<RowSettings>, ArrayView<RowOutput>, StepShape> _step;
    private readonly WorkerScratch _hostScratch = new();
    private Action<AcceleratorStream, Index1D, ArrayView<float>, RowSettings, int>? _noise; // diagnostics, loaded on first use
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, HeadShape> _linearHead;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, HeadShape> _mlpHead;
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<ValueHead, DeviceHead> _heads = new();
    private MemoryBuffer1D<float, Stride1D.Dense> _hidden;
    private MemoryBuffer1D<float, Stride1D.Dense> _headValues;

    private MemoryBuffer1D<float, Stride1D.Dense> _logits;
    private MemoryBuffer1D<int, Stride1D.Dense> _ids;
    private MemoryBuffer1D<float, Stride1D.Dense> _values;
    private MemoryBuffer1D<RowSettings, Stride1D.Dense> _settings;
    private MemoryBuffer1D<RowOutput, Stride1D.Dense> _output;
    private RowSettings[] _hostSettings = new RowSettings[64];
    private RowOutput[] _hostOutput = new RowOutput[64];

    private IlgpuStepKernels(Context context, Accelerator accelerator, string name)
    {
        _context = context;
        _accelerator = accelerator;
        Name = name;
        _stream = accelerator.CreateStream();
        _groupSize = 1;
        while (_groupSize * 2 <= Math.Min(StepKernel.MaxGroupSize, accelerator.MaxNumThreadsPerGroup))
            _groupSize *= 2;
        _step = accelerator.LoadKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<RowSettings>,
            ArrayView<RowOutput>, StepShape>(StepKernel.Run);
        _linearHead = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, HeadShape>(HeadKernels.Linear);
        _mlpHead = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, HeadShape>(HeadKernels.Mlp);
        _hidden = accelerator.Allocate1D<float>(1);
        _headValues = accelerator.Allocate1D<float>(64);
        _logits = accelerator.Allocate1D<float>(1);
        _ids = accelerator.Allocate1D<int>(1);
        _values = accelerator.Allocate1D<float>(1);
        _settings = accelerator.Allocate1D<RowSettings>(64);
        _output = accelerator.Allocate1D<RowOutput>(64);
    }

    public override string Name { get; }

    /// <summary>The device in words, for logs.</summary>
    public string Device => _accelerator.Name;

    /// <summary>The first CUDA device, or null with the reason in <paramref name="why"/>.</summary>
    public static IStepKernels? CreateCuda(out string why)
    {
        var context = Context.Create(builder => builder.Cuda().EnableAlgorithms());
        try
        {
            var devices = context.GetCudaDevices();
            if (devices.Count == 0)
            {
                why = "no CUDA device found (no NVIDIA driver, or no GPU visible to this process)";
                context.Dispose();
                return null;
            }
            var device = devices[0];
            var accelerator = device.CreateAccelerator(context);
            why = $"CUDA device 0 of {devices.Count}: {device.Name}, {device.Architecture?.ToString() ?? "unknown architecture"}, " +
                $"{device.MemorySize >> 20} MiB";
            return new IlgpuStepKernels(context, accelerator, "ilgpu-cuda");
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Whether a CUDA device is visible, in words (for the backend choice's log line); never throws.</summary>
    public static string DescribeCuda()
    {
        try
        {
            using var context = Context.Create(builder => builder.Cuda());
            var devices = context.GetCudaDevices();
            return devices.Count == 0 ? "no CUDA device found" : $"CUDA device 0 of {devices.Count}: {devices[0].Name}";
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return $"CUDA initialisation failed ({e.GetType().Name}: {e.Message})";
        }
    }

    /// <summary>ILGPU's CPU accelerator: the same kernels, simulated with threads. Tests only.</summary>
    public static IStepKernels CreateCpuSimulator()
    {
        var context = Context.Create(builder => builder.DefaultCPU().EnableAlgorithms());
        try
        {
            return new IlgpuStepKernels(context, context.CreateCPUAccelerator(0), "ilgpu-cpu");
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    protected override void Execute(ReadOnlySpan<float> logits, int rows, int vocab,
        ReadOnlySpan<int> candidateIds, int candidates, ReadOnlySpan<float> values, ReadOnlySpan<float> beta,
        ReadOnlySpan<SamplingParameters> parameters, ReadOnlySpan<RngKey> keys,
        Span<int> tokens, Span<float> baseLogProb, Span<float> tiltedLogProb, Span<float> kl)
    {
        bool dense = candidateIds.IsEmpty;
        // Candidate ids are checked on the host (cheap, and the same message as the CPU backend); everything that
        // needs a pass over the logits or values is checked by the kernel and reported through RowOutput.Status.
        if (!dense)
            for (int r = 0; r < rows; r++)
                _hostScratch.CheckCandidates(candidateIds.Slice(r * candidates, candidates), vocab, r);

        long nLogits = (long)rows * vocab, nCand = (long)rows * candidates;
        Grow(ref _logits, nLogits);
        Upload(_logits, logits[..checked((int)nLogits)]);
        if (!dense)
        {
            Grow(ref _ids, nCand);
            Upload(_ids, candidateIds[..checked((int)nCand)]);
        }
        bool hasValues = !values.IsEmpty;
        if (hasValues)
        {
            Grow(ref _values, nCand);
            Upload(_values, values[..checked((int)nCand)]);
        }
        if (_hostSettings.Length < rows)
        {
            _hostSettings = new RowSettings[Math.Max(rows, _hostSettings.Length * 2)];
            _hostOutput = new RowOutput[_hostSettings.Length];
        }
        for (int r = 0; r < rows; r++)
        {
            SamplingParameters p = parameters[r];
            RngKey k = keys[r];
            _hostSettings[r] = new RowSettings
            {
                Temperature = p.Temperature, TopK = p.TopK, TopP = p.TopP,
                Beta = beta.IsEmpty ? float.PositiveInfinity : beta[r],
                SeedLo = (uint)k.Seed, SeedHi = (uint)(k.Seed >> 32), Request = k.Request, Step = k.Step, Row = k.Row,
            };
        }
        Grow(ref _settings, rows);
        Grow(ref _output, rows);
        Upload(_settings, _hostSettings.AsSpan(0, rows));

        var shape = new StepShape
        {
            Vocab = vocab, Candidates = candidates, Dense = dense ? 1 : 0, HasValues = hasValues ? 1 : 0,
            WantKl = kl.IsEmpty ? 0 : 1, IdBits = Math.Max(1, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)(vocab - 1))),
        };
        _step(_stream, new KernelConfig(rows, _groupSize), _logits.View, _ids.View, _values.View, _settings.View, _output.View, shape);
        _stream.Synchronize();
        _output.View.SubView(0, rows).CopyToCPU(_stream, ref _hostOutput[0], rows);
        _stream.Synchronize(); // the copy is queued on the stream: the host buffer is complete only after it ran

        for (int r = 0; r < rows; r++)
            ThrowIfRejected(r, _hostOutput[r], dense);
        for (int r = 0; r < rows; r++)
        {
            RowOutput o = _hostOutput[r];
            tokens[r] = o.Token;
            baseLogProb[r] = o.BaseLogProb;
            tiltedLogProb[r] = o.TiltedLogProb;
            if (!kl.IsEmpty)
                kl[r] = o.Kl;
        }
    }

    protected override void Score(ValueHead head, ReadOnlySpan<float> hidden, int rows, Span<float> values)
    {
        DeviceHead device = _heads.GetValue(head, h => new DeviceHead(_accelerator, h));
        long n = (long)rows * head.InputSize;
        Grow(ref _hidden, n);
        Upload(_hidden, hidden[..checked((int)n)]);
        Grow(ref _headValues, rows);
        var config = new KernelConfig(rows, _groupSize);
        if (head is LinearValueHead linear)
            _linearHead(_stream, config, _hidden.View, device.W1.View, _headValues.View,
                new HeadShape { InputSize = head.InputSize, Units = 1, OutputBias = linear.Bias });
        else if (head is MlpValueHead mlp)
            _mlpHead(_stream, config, _hidden.View, device.W1.View, device.B1!.View, device.W2!.View, _headValues.View,
                new HeadShape { InputSize = head.InputSize, Units = mlp.HiddenUnits, Activation = (int)mlp.Activation, OutputBias = mlp.B2 });
        else
            throw new ArgumentException($"Unknown value head type {head.GetType().Name}.", nameof(head));
        _stream.Synchronize();
        _headValues.View.SubView(0, rows).CopyToCPU(_stream, ref MemoryMarshal.GetReference(values), rows);
        _stream.Synchronize(); // the copy is queued on the stream: the host buffer is complete only after it ran
    }

    /// <summary>A head's weights on the device, uploaded once.</summary>
    private sealed class DeviceHead
    {
        public DeviceHead(Accelerator accelerator, ValueHead head)
        {
            switch (head)
            {
                case LinearValueHead linear:
                    W1 = accelerator.Allocate1D(linear.Weights.ToArray());
                    break;
                case MlpValueHead mlp:
                    W1 = accelerator.Allocate1D(mlp.W1.ToArray());
                    B1 = accelerator.Allocate1D(mlp.B1.ToArray());
                    W2 = accelerator.Allocate1D(mlp.W2.ToArray());
                    break;
                default:
                    throw new ArgumentException($"Unknown value head type {head.GetType().Name}.", nameof(head));
            }
        }

        public MemoryBuffer1D<float, Stride1D.Dense> W1 { get; }
        public MemoryBuffer1D<float, Stride1D.Dense>? B1 { get; }
        public MemoryBuffer1D<float, Stride1D.Dense>? W2 { get; }
    }

    /// <summary>Diagnostics: the device's Gumbel noise for every column of a row of output.Length tokens.</summary>
    internal void Noise(RngKey key, Span<float> output)
    {
        var kernel = _noise ??= _accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, RowSettings, int>(NoiseKernel.Run);
        using var buffer = _accelerator.Allocate1D<float>(output.Length);
        var settings = new RowSettings { SeedLo = (uint)key.Seed, SeedHi = (uint)(key.Seed >> 32), Request = key.Request, Step = key.Step, Row = key.Row };
        kernel(_stream, output.Length, buffer.View, settings, output.Length);
        _stream.Synchronize();
        buffer.View.CopyToCPU(_stream, ref MemoryMarshal.GetReference(output), output.Length);
        _stream.Synchronize(); // the copy is queued on the stream: the host buffer is complete only after it ran
    }

    private static void ThrowIfRejected(int row, RowOutput o, bool dense)
    {
        switch (o.Status)
        {
            case RowStatus.Ok:
                return;
            case RowStatus.LogitsNaN:
                throw new ArgumentException($"logits row {row} contains NaN (at index {o.Detail}).", "logits");
            case RowStatus.LogitsPositiveInfinity:
                throw new ArgumentException($"logits row {row} contains +infinity (at index {o.Detail}); only -infinity (masked) is allowed.", "logits");
            case RowStatus.LogitsAllMasked:
                throw new ArgumentException($"logits row {row} is entirely masked (every entry is -infinity): nothing can be sampled.", "logits");
            case RowStatus.ValuesNaN:
                throw new ArgumentException($"values row {row} contains NaN (at index {o.Detail}).", "values");
            case RowStatus.ValuesPositiveInfinity:
                throw new ArgumentException($"values row {row} contains +infinity (at index {o.Detail}).", "values");
            case RowStatus.NoFiniteCandidate:
                throw new ArgumentException($"Row {row} has no candidate with a finite score: every candidate is masked by -infinity in logits or values.", dense ? "values" : "candidateIds");
            case RowStatus.ScoreOverflow:
                throw new ArgumentException($"Row {row}: a tilted score overflowed to +infinity (logits / T + values / beta); raise T or beta.", "values");
            default:
                throw new InvalidOperationException($"The step kernel returned an unknown status {o.Status} for row {row}.");
        }
    }

    private void Grow<T>(ref MemoryBuffer1D<T, Stride1D.Dense> buffer, long length) where T : unmanaged
    {
        if (buffer.Length >= length)
            return;
        buffer.Dispose();
        buffer = _accelerator.Allocate1D<T>(Math.Max(length, buffer.Length * 2));
    }

    private void Upload<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, ReadOnlySpan<T> data) where T : unmanaged =>
        buffer.View.SubView(0, data.Length).CopyFromCPU(_stream, ref MemoryMarshal.GetReference(data), data.Length);

    public override void Dispose()
    {
        foreach (var (_, head) in _heads)
        {
            head.W1.Dispose();
            head.B1?.Dispose();
            head.W2?.Dispose();
        }
        _hidden.Dispose();
        _headValues.Dispose();
        _logits.Dispose();
        _ids.Dispose();
        _values.Dispose();
        _settings.Dispose();
        _output.Dispose();
        _stream.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }
}
