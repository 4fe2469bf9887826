using System.Globalization;
using Tilt.Engine.Models;

namespace Tilt.Engine.Requests;

/// <summary>
/// An aligned strategy and its named fields as a front-end received them (<see cref="StrategyFields"/>): null = not
/// given, the strategy's default. <see cref="Build"/> validates what the strategy reads (each error names the field, the
/// value and the allowed range) and builds the engine's options; the shared decoding fields (max tokens, seed, sampling,
/// stop, log-probabilities) are set on the result by the front-end. Not sealed: a front-end's own request type can be a
/// spec with more (Tilt.Hosting's <c>TiltAlignment</c> adds the reward).
/// </summary>
public record StrategySpec
{
    /// <summary>Which strategy (one of <see cref="StrategyCatalog.Entries"/>).</summary>
    public required DecodingStrategy Strategy { get; init; }

    /// <summary><c>n</c>: candidates per output of best-of-n and soft best-of-n (default 4) and rejection (16); 1..256.</summary>
    public int? N { get; init; }

    /// <summary><c>k</c>: blockwise CD's candidate blocks per step, 1..256 (default 8).</summary>
    public int? K { get; init; }

    /// <summary><c>beams</c>: beam search's beams kept after every step, 1..k (default 2).</summary>
    public int? Beams { get; init; }

    /// <summary><c>block</c>: blockwise CD's tokens per block (M), at least 1 (default 8).</summary>
    public int? Block { get; init; }

    /// <summary><c>top_k</c>: token-wise CD's candidate tokens per step, 0 = the whole vocabulary (default 16).</summary>
    public int? TopK { get; init; }

    /// <summary><c>beta</c>: the tilt of token-wise CD and of blockwise CD's sampled selection, finite and >= 1e-30 (default 1).</summary>
    public double? Beta { get; init; }

    /// <summary><c>alpha</c>: the fraction of rejection's unfinished candidates stopped per decision, in [0, 1) (default 0.5).</summary>
    public double? Alpha { get; init; }

    /// <summary><c>every</c>: rejection's tokens between decisions, shorter than max tokens (default 8).</summary>
    public int? Every { get; init; }

    /// <summary>
    /// <c>decide_at</c>: rejection's budget mode, one decision only when the unfinished candidates have generated this many
    /// tokens (then <c>every</c> is not read); shorter than max tokens (default none: a decision every <c>every</c> tokens).
    /// </summary>
    public int? DecideAt { get; init; }

    /// <summary><c>lambda</c>: soft best-of-n's selection temperature, finite and >= 1e-30 (default 1).</summary>
    public double? Lambda { get; init; }

    /// <summary><c>selection</c>: how blockwise CD picks its block (default argmax).</summary>
    public BlockSelectionMode? Selection { get; init; }

    /// <summary><c>return_candidates</c>: the candidate pools return every candidate (default false).</summary>
    public bool? ReturnCandidates { get; init; }

    /// <summary><c>samples</c>: independent aligned outputs, 1..100000 (default 1).</summary>
    public int? Samples { get; init; }

    /// <summary><c>deadline_ms</c>: the request's wall-clock budget in milliseconds, positive (default none).</summary>
    public long? DeadlineMs { get; init; }

    /// <summary>
    /// Checks the fields the strategy reads (every given field with <see cref="StrategyLimits.CheckUnread"/>) against
    /// <paramref name="limits"/> (the engine's own bounds by default); the first bad one throws a
    /// <see cref="StrategyFieldException"/> naming it.
    /// </summary>
    public void Validate(StrategyLimits? limits = null)
    {
        limits ??= StrategyLimits.Engine;
        var entry = StrategyCatalog.Get(Strategy);
        bool Checks(string field) => limits.CheckUnread || entry.Reads(field);

        if (N is { } n && Checks(StrategyFields.N)) Count(StrategyFields.N, n, 1, limits.MaxCandidates);
        if (K is { } k && Checks(StrategyFields.K)) Count(StrategyFields.K, k, 1, limits.MaxCandidates);
        if (Block is { } block && Checks(StrategyFields.Block)) Count(StrategyFields.Block, block, 1, limits.MaxBlock);
        if (Beams is { } beams && Checks(StrategyFields.Beams))
        {
            Count(StrategyFields.Beams, beams, 1, limits.MaxCandidates);
            int blocks = K ?? new BeamOptions().K;
            if (entry.Reads(StrategyFields.Beams) && beams > blocks)
                throw new StrategyFieldException(StrategyFields.Beams, Text(beams), $"must not exceed k ({blocks}): each kept beam needs a candidate block per step", outOfRange: true);
        }
        if (TopK is { } topK && Checks(StrategyFields.TopK))
            Count(StrategyFields.TopK, topK, limits.MinTopK, limits.MaxTopK, limits.MinTopK == 0 ? " (0 = the whole vocabulary)" : "");
        if (Beta is { } beta && Checks(StrategyFields.Beta)) Temperature(StrategyFields.Beta, beta);
        if (Lambda is { } lambda && Checks(StrategyFields.Lambda)) Temperature(StrategyFields.Lambda, lambda);
        if (Alpha is { } alpha && Checks(StrategyFields.Alpha) && !(alpha is >= 0 and < 1))
            throw new StrategyFieldException(StrategyFields.Alpha, Text(alpha), "must be in [0, 1) (0 = best-of-n, no rejection)");
        if (Every is { } every && Checks(StrategyFields.Every)) CheckEvery(every, limits.MaxTokens, StrategyFields.Every);
        if (DecideAt is { } decideAt && Checks(StrategyFields.DecideAt)) CheckEvery(decideAt, limits.MaxTokens, StrategyFields.DecideAt);
        if (Samples is { } samples) Count(StrategyFields.Samples, samples, 1, AlignOptions.MaxSamples);
        if (DeadlineMs is { } ms && ms <= 0) throw new StrategyFieldException(StrategyFields.DeadlineMs, Text(ms), "must be positive");
    }

    /// <summary>Validates (<see cref="Validate"/>) and builds the engine's options; unset fields keep their defaults.</summary>
    public AlignOptions Build(StrategyLimits? limits = null)
    {
        limits ??= StrategyLimits.Engine;
        Validate(limits);
        var options = StrategyCatalog.Get(Strategy).Build(this);
        // A default decision interval must fit the output as much as a given one does.
        if (options is RejectionOptions { DecideAt: null } rejection && Every is null) CheckEvery(rejection.Every, limits.MaxTokens, StrategyFields.Every);
        return options with
        {
            Samples = Samples ?? options.Samples,
            Deadline = DeadlineMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null,
        };
    }

    private static void Count(string field, int value, int min, int max, string note = "")
    {
        if (value >= min && value <= max) return;
        string range = max == int.MaxValue ? $"at least {min}" : $"between {min} and {max}";
        throw new StrategyFieldException(field, Text(value), $"must be {range}{note}", outOfRange: true);
    }

    /// <summary>beta and lambda: the kernels divide float values by them, so they must stay normal floats.</summary>
    private static void Temperature(string field, double value)
    {
        if (!double.IsFinite(value) || value < AlignOptions.MinBeta)
            throw new StrategyFieldException(field, Text(value), $"must be a finite number >= {AlignOptions.MinBeta.ToString("R", CultureInfo.InvariantCulture)}");
    }

    /// <summary>A decision interval (or budget mode's one decision length) as long as the output would never decide anything.</summary>
    private static void CheckEvery(int every, int? maxTokens, string field)
    {
        // An invalid max tokens is reported by its own check (DecodingOptions.MaxTokens), not as this field's fault.
        if (maxTokens is not { } tokens || tokens < 1)
        {
            Count(field, every, 1, int.MaxValue);
            return;
        }
        if (tokens < 2)
            throw new StrategyFieldException(field, Text(every),
                $"must be shorter than max tokens ({tokens}); rejection needs max tokens of at least 2", outOfRange: true);
        string what = field == StrategyFields.DecideAt ? "a decision length" : "a decision interval";
        Count(field, every, 1, tokens - 1, $" ({what} shorter than max tokens, {tokens})");
    }

    private static string Text(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Bounds a front-end puts on the named fields beyond the engine's own (a server's request limits, the output length
/// a decision interval must fit in). <see cref="Engine"/> is the engine's bounds alone.
/// </summary>
public sealed record StrategyLimits
{
    /// <summary>The engine's own bounds.</summary>
    public static StrategyLimits Engine { get; } = new();

    /// <summary>Largest n and k. Defaults to <see cref="SessionOptions.MaxSupportedSequences"/>.</summary>
    public int MaxCandidates { get; init; } = SessionOptions.MaxSupportedSequences;

    /// <summary>Smallest top-k; 0 (the default) allows the whole vocabulary.</summary>
    public int MinTopK { get; init; }

    /// <summary>Largest top-k. Defaults to unbounded (the engine caps the forks at its sequences).</summary>
    public int MaxTopK { get; init; } = int.MaxValue;

    /// <summary>Largest block. Defaults to unbounded.</summary>
    public int MaxBlock { get; init; } = int.MaxValue;

    /// <summary>The request's max tokens, when known: a decision interval must be shorter. Defaults to unknown.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>
    /// Also check the given fields the strategy does not read (a JSON object names only what its sender set, so a bad
    /// value there is a mistake worth reporting). Defaults to false: front-ends that fill every field with a default
    /// check only what the strategy reads.
    /// </summary>
    public bool CheckUnread { get; init; }
}

/// <summary>
/// A named field (<see cref="StrategyFields"/>) out of its range, or a name that is not a strategy. The message names
/// the catalogue's field; <see cref="MessageFor"/> names it as a front-end spells it (<c>--top-k</c>, <c>alignment.top_k</c>).
/// </summary>
public sealed class StrategyFieldException(string field, string value, string rule, bool outOfRange = false)
    : ArgumentException(null, field)
{
    /// <summary>The catalogue's name of the field (<c>n</c>, <c>top_k</c>, <c>strategy</c>, ...).</summary>
    public string Field { get; } = field;

    /// <summary>The value as given, as text (strings quoted).</summary>
    public string Value { get; } = value;

    /// <summary>What it must be ("must be between 1 and 256").</summary>
    public string Rule { get; } = rule;

    /// <summary>True for a count outside its bounds (HTTP <c>out_of_range</c>); false for any other invalid value.</summary>
    public bool OutOfRange { get; } = outOfRange;

    /// <summary>"n must be between 1 and 256, got 300".</summary>
    public override string Message => MessageFor(Field);

    /// <summary>The message with the field spelled <paramref name="label"/>: "--n must be between 1 and 256, got 300".</summary>
    public string MessageFor(string label) => $"{label} {Rule}, got {Value}";
}
