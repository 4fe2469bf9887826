using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Tilt.Kernels.Cpu;

/// <summary>
/// The SIMD CPU backend ("cpu-simd"): Vector256 math, AVX2 Philox, rows spread over persistent worker threads.
/// Allocates nothing per call once its scratch has grown to the largest shapes seen. Use from one thread at a time.
/// </summary>
internal sealed unsafe class CpuStepKernels : FusedStepKernels
{
    // Below this many scores per call a fork-join costs more than it saves (a wake-up is ~5-20 us).
    private const long ParallelThreshold = 1 << 16;

    private readonly RowScheduler _scheduler;
    private readonly WorkerScratch[] _scratch;
    private readonly Action<int, int> _rowBody;
    private readonly Action<int, int> _headChunk;
    private ValueHead? _head;
    private float* _hidden;
    private int _hiddenRows;
    private float* _headValues;

    // Arguments of the call in flight, pinned for the workers (spans cannot live in fields).
    private float* _logits;
    private int _vocab;
    private int* _candidateIds;
    private int _candidates;
    private float* _values;
    private float* _beta;
    private SamplingParameters* _parameters;
    private RngKey* _keys;
    private int* _tokens;
    private float* _baseLogProb;
    private float* _tiltedLogProb;
    private float* _kl;

    /// <summary>
    /// Worker threads (the caller's included) when none are given: $TILT_KERNEL_THREADS when set (1..logical CPUs; for
    /// measuring how the kernels' threads share the cores with llama.cpp's, docs/performance.md), else every logical CPU.
    /// </summary>
    internal static int DefaultWorkers() =>
        int.TryParse(Environment.GetEnvironmentVariable("TILT_KERNEL_THREADS"), out int n) && n >= 1 && n <= Environment.ProcessorCount
            ? n
            : Environment.ProcessorCount;

    public CpuStepKernels(int workers = 0)
    {
        _scheduler = new RowScheduler(workers > 0 ? workers : DefaultWorkers());
        _scratch = new WorkerScratch[_scheduler.WorkerCount];
        for (int i = 0; i < _scratch.Length; i++)
            _scratch[i] = new WorkerScratch();
        _rowBody = Row;
        _headChunk = HeadChunk;
    }

    // Rows per task of a parallel value head: a multiple of 4 (the MLP's register block).
    private const int HeadChunkRows = 8;

    protected override void Score(ValueHead head, ReadOnlySpan<float> hidden, int rows, Span<float> values)
    {
        if (rows <= HeadChunkRows || (long)rows * head.CostPerRow < ParallelThreshold * 16)
        {
            head.ScoreRows(hidden, 0, rows, values);
            return;
        }
        fixed (float* ph = hidden)
        fixed (float* pv = values)
        {
            _head = head; _hidden = ph; _hiddenRows = rows; _headValues = pv;
            try
            {
                _scheduler.Run((rows + HeadChunkRows - 1) / HeadChunkRows, int.MaxValue, _headChunk);
            }
            finally
            {
                _head = null; _hidden = null; _headValues = null;
            }
        }
    }

    private void HeadChunk(int chunk, int worker)
    {
        int first = chunk * HeadChunkRows, count = Math.Min(HeadChunkRows, _hiddenRows - first);
        int d = _head!.InputSize;
        _head.ScoreRows(new ReadOnlySpan<float>(_hidden, _hiddenRows * d), first, count, new Span<float>(_headValues, _hiddenRows));
    }

    public override string Name => "cpu-simd";

    internal static string Describe() =>
        $"{DefaultWorkers()} worker thread(s), Vector256 {(Vector256.IsHardwareAccelerated ? "accelerated" : "emulated")}, " +
        $"Philox {(Avx2.IsSupported ? "AVX2" : "scalar")}";

    protected override void Execute(ReadOnlySpan<float> logits, int rows, int vocab,
        ReadOnlySpan<int> candidateIds, int candidates, ReadOnlySpan<float> values, ReadOnlySpan<float> beta,
        ReadOnlySpan<SamplingParameters> parameters, ReadOnlySpan<RngKey> keys,
        Span<int> tokens, Span<float> baseLogProb, Span<float> tiltedLogProb, Span<float> kl)
    {
        fixed (float* pl = logits)
        fixed (int* pc = candidateIds)
        fixed (float* pv = values)
        fixed (float* pb = beta)
        fixed (SamplingParameters* pp = parameters)
        fixed (RngKey* pk = keys)
        fixed (int* pt = tokens)
        fixed (float* pbl = baseLogProb)
        fixed (float* ptl = tiltedLogProb)
        fixed (float* pkl = kl)
        {
            _logits = pl; _vocab = vocab; _candidateIds = pc; _candidates = candidates; _values = pv; _beta = pb;
            _parameters = pp; _keys = pk; _tokens = pt; _baseLogProb = pbl; _tiltedLogProb = ptl; _kl = pkl;
            try
            {
                long work = (long)rows * Math.Max(vocab, candidates);
                _scheduler.Run(rows, work >= ParallelThreshold ? int.MaxValue : 1, _rowBody);
            }
            finally
            {
                _logits = null; _candidateIds = null; _values = null; _beta = null; _parameters = null; _keys = null;
                _tokens = null; _baseLogProb = null; _tiltedLogProb = null; _kl = null;
            }
        }
    }

    // One row of the fused step: log-partition of the base model, tilted scores, filter, Gumbel-max, log-probs, KL.
    private void Row(int row, int worker)
    {
        WorkerScratch scratch = _scratch[worker];
        var x = new ReadOnlySpan<float>(_logits + (long)row * _vocab, _vocab); // [vocab] raw logits
        ReadOnlySpan<int> ids = _candidateIds == null ? default : new ReadOnlySpan<int>(_candidateIds + (long)row * _candidates, _candidates);
        ReadOnlySpan<float> v = _values == null ? default : new ReadOnlySpan<float>(_values + (long)row * _candidates, _candidates);
        float beta = _beta == null ? float.PositiveInfinity : _beta[row];
        SamplingParameters p = _parameters[row];
        ref readonly RngKey key = ref _keys[row];

        float m = RowMath.CheckedMax(x, row, "logits");
        double logZ = m + Math.Log(RowMath.SumExp(x, m, 1f)); // log-partition of the base model at T = 1
        if (!ids.IsEmpty)
            scratch.CheckCandidates(ids, _vocab, row);
        bool tilt = !v.IsEmpty && beta != float.PositiveInfinity;

        // Scores s = x/T + V/beta over the candidates (T = 1 for greedy rows). They are materialized unless they are
        // the raw logits themselves, or an unfiltered dense row whose division by T can be done on the fly.
        float t = p.IsGreedy ? 1f : p.Temperature;
        bool filtered = !p.IsGreedy && ((p.TopK > 0 && p.TopK < (ids.IsEmpty ? _vocab : ids.Length)) || p.TopP < 1f);
        ReadOnlySpan<float> s;
        float divisor = 1f, sMax;
        if (ids.IsEmpty && !tilt && (t == 1f || !filtered))
        {
            s = x;
            divisor = t;
            sMax = DeviceFloat.Div(m, t);
            if (float.IsPositiveInfinity(sMax))
                throw new ArgumentException($"Row {row}: a tilted score overflowed to +infinity (logits / T + values / beta); raise T or beta.", "values");
        }
        else
        {
            Span<float> buf = scratch.Scores(ids.IsEmpty ? _vocab : ids.Length);
            for (int j = 0; j < buf.Length; j++)
            {
                float sj = DeviceFloat.Div(x[RowMath.Id(ids, j)], t);
                buf[j] = tilt ? DeviceFloat.Add(sj, DeviceFloat.Div(v[j], beta)) : sj;
            }
            s = buf;
            sMax = VectorMath.MaxAndNaN(s, out bool sNaN);
            // The logits are already checked, so a NaN or +inf score comes from the values (or an overflow): only then
            // is the values row scanned, to name the index.
            if (tilt && (sNaN || float.IsPositiveInfinity(sMax)))
                RowMath.CheckValues(v, row, "values");
            if (float.IsNegativeInfinity(sMax))
                throw new ArgumentException($"Row {row} has no candidate with a finite score: every candidate is masked by -infinity in logits or values.", ids.IsEmpty ? "values" : "candidateIds");
            if (float.IsPositiveInfinity(sMax))
                throw new ArgumentException($"Row {row}: a tilted score overflowed to +infinity (logits / T + values / beta); raise T or beta.", "values");
        }

        int token;
        double tiltedLp, klValue = 0;
        if (p.IsGreedy)
        {
            token = RowMath.Id(ids, RowMath.ArgmaxPosition(s, ids, sMax));
            tiltedLp = 0;
            klValue = logZ - x[token]; // KL(delta_token || p) = -log p(token)
        }
        else if (!filtered)
        {
            int maxPosition = RowMath.ArgmaxPosition(s, ids, divisor == 1f ? sMax : m); // s holds raw logits when divisor != 1
            int position = ids.IsEmpty ? RowMath.GumbelArgmax(s, divisor, key, maxPosition) : RowMath.GumbelArgmaxList(s, ids, key, maxPosition, _vocab);
            token = RowMath.Id(ids, position);
            float sTok = divisor == 1f ? s[position] : DeviceFloat.Div(s[position], divisor);
            bool identity = ids.IsEmpty && !tilt && t == 1f; // pi is p itself: KL = 0 exactly
            if (_kl != null && !identity)
            {
                var (z, a) = RowMath.KlSums(s, divisor, ids, x, sMax);
                double logZs = sMax + Math.Log(z);
                tiltedLp = sTok - logZs;
                klValue = a / z + logZ - logZs;
            }
            else
            {
                // Sum exp((raw - rawMax) / divisor) in float lanes: the log-prob needs ~1e-6, not float64 sums. When the
                // scores are the raw logits the base model's sum is that sum already.
                double logZs = identity ? logZ - m : Math.Log(RowMath.SumExp(s, divisor == 1f ? sMax : m, 1f / divisor));
                tiltedLp = (s[position] - (double)(divisor == 1f ? sMax : m)) / divisor - logZs;
            }
        }
        else
        {
            ReadOnlySpan<ulong> survivors = scratch.Filter(s, ids, sMax, p.TopK, p.TopP);
            int position = RowMath.GumbelArgmaxSorted(survivors, key, _vocab);
            token = RowMath.IdOf(survivors[position]);
            double z = RowMath.SumExpSorted(survivors);
            double logZs = RowMath.ScoreOf(survivors[0]) + Math.Log(z);
            tiltedLp = RowMath.ScoreOf(survivors[position]) - logZs;
            if (_kl != null)
                klValue = RowMath.KlTermSorted(survivors, x) / z + logZ - logZs;
        }
        _tokens[row] = token;
        _baseLogProb[row] = (float)(x[token] - logZ);
        _tiltedLogProb[row] = (float)tiltedLp;
        if (_kl != null)
            _kl[row] = (float)Math.Max(0, klValue); // rounding can leave a true 0 at -1e-9
    }

    public override void Dispose() => _scheduler.Dispose();
}
