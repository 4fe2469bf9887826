namespace Tilt.Engine.Requests;

/// <summary>
/// One aligned strategy as every front-end names it: the CLI's <c>--strategy</c>, a batch line's and an HTTP
/// <c>alignment</c> object's <c>strategy</c>, the C API's enum, Tilt.Hosting's <c>TiltAlignment.Strategy</c>.
/// </summary>
public sealed record StrategyEntry
{
    /// <summary>The engine's name for it (what <see cref="DecodingRequest.Strategy"/> reports).</summary>
    public required DecodingStrategy Strategy { get; init; }

    /// <summary>The canonical text name (<c>bon</c>, <c>soft-bon</c>, ...): what outputs and errors print.</summary>
    public required string Name { get; init; }

    /// <summary>Other spellings the parser takes (<c>best-of-n</c>, ...).</summary>
    public required IReadOnlyList<string> Aliases { get; init; }

    /// <summary>The named fields (<see cref="StrategyFields"/>) it reads beyond <c>samples</c> and <c>deadline_ms</c>.</summary>
    public required IReadOnlyList<string> Fields { get; init; }

    /// <summary>
    /// Whether it steers by a value V(x, y^t) (token-wise and blockwise CD, early rejection) or ranks whole candidates by
    /// the reward alone (best-of-n, soft best-of-n), where a value head would be ignored.
    /// </summary>
    public required bool ReadsValue { get; init; }

    /// <summary>
    /// Builds its options from a validated spec (the fields left null keep the options' defaults). Internal, so options are
    /// only built through <see cref="StrategySpec.Build"/>, which validates first; every entry of the catalogue sets it.
    /// </summary>
    internal Func<StrategySpec, AlignOptions> Build { get; init; } = _ => throw new InvalidOperationException("a catalogue entry without a builder");

    /// <summary>Whether it reads <paramref name="field"/>.</summary>
    public bool Reads(string field) => field is StrategyFields.Samples or StrategyFields.DeadlineMs || Fields.Contains(field);
}

/// <summary>
/// The one list of aligned strategies: names, aliases, the fields each reads and how its options are built. Adding a
/// strategy is one entry here (plus its options type and its run in the engine); every front-end parses, validates and
/// builds through <see cref="Parse"/> and <see cref="StrategySpec.Build"/>.
/// </summary>
public static class StrategyCatalog
{
    /// <summary>Every aligned strategy, in the order errors list them.</summary>
    public static IReadOnlyList<StrategyEntry> Entries { get; } =
    [
        new()
        {
            Strategy = DecodingStrategy.BestOfN, Name = "bon", Aliases = ["best-of-n", "best_of_n"], ReadsValue = false,
            Fields = [StrategyFields.N, StrategyFields.ReturnCandidates],
            Build = s => new BestOfNOptions().WithPool(s),
        },
        new()
        {
            Strategy = DecodingStrategy.SoftBestOfN, Name = "soft-bon", Aliases = ["soft-best-of-n", "soft_best_of_n", "soft_bon"], ReadsValue = false,
            Fields = [StrategyFields.N, StrategyFields.Lambda, StrategyFields.ReturnCandidates],
            Build = s =>
            {
                var options = new SoftBestOfNOptions().WithPool(s);
                return s.Lambda is { } lambda ? options with { Lambda = lambda } : options;
            },
        },
        new()
        {
            Strategy = DecodingStrategy.Tokenwise, Name = "tokenwise", Aliases = ["token-wise"], ReadsValue = true,
            Fields = [StrategyFields.TopK, StrategyFields.Beta],
            Build = s =>
            {
                var defaults = new TokenwiseOptions();
                return new TokenwiseOptions { Candidates = s.TopK ?? defaults.Candidates, Beta = s.Beta ?? defaults.Beta };
            },
        },
        new()
        {
            Strategy = DecodingStrategy.Blockwise, Name = "blockwise", Aliases = ["block-wise"], ReadsValue = true,
            Fields = [StrategyFields.K, StrategyFields.Block, StrategyFields.Selection, StrategyFields.Beta],
            Build = s =>
            {
                var defaults = new BlockwiseOptions();
                return new BlockwiseOptions
                {
                    K = s.K ?? defaults.K, BlockSize = s.Block ?? defaults.BlockSize, Selection = s.Selection ?? defaults.Selection, Beta = s.Beta ?? defaults.Beta,
                };
            },
        },
        new()
        {
            Strategy = DecodingStrategy.Beam, Name = "beam", Aliases = ["beam-search", "beam_search"], ReadsValue = true,
            Fields = [StrategyFields.Beams, StrategyFields.K, StrategyFields.Block],
            Build = s =>
            {
                var defaults = new BeamOptions();
                return new BeamOptions { Beams = s.Beams ?? defaults.Beams, K = s.K ?? defaults.K, BlockSize = s.Block ?? defaults.BlockSize };
            },
        },
        new()
        {
            Strategy = DecodingStrategy.Rejection, Name = "rejection", Aliases = ["early-rejection", "early_rejection"], ReadsValue = true,
            Fields = [StrategyFields.N, StrategyFields.Alpha, StrategyFields.Every, StrategyFields.DecideAt, StrategyFields.ReturnCandidates],
            Build = s =>
            {
                var defaults = new RejectionOptions();
                return new RejectionOptions
                {
                    N = s.N ?? defaults.N, Alpha = s.Alpha ?? defaults.Alpha, Every = s.Every ?? defaults.Every, DecideAt = s.DecideAt,
                    ReturnCandidates = s.ReturnCandidates ?? false,
                };
            },
        },
    ];

    /// <summary>The entry of <paramref name="strategy"/>; <see cref="ArgumentException"/> for Generate and Score.</summary>
    public static StrategyEntry Get(DecodingStrategy strategy) =>
        Entries.FirstOrDefault(e => e.Strategy == strategy)
        ?? throw new ArgumentException($"{strategy} is not an aligned strategy (known: {Names(Entries)})", nameof(strategy));

    /// <summary>The entry named <paramref name="name"/> (canonical name or alias, any case), or null.</summary>
    public static StrategyEntry? Find(string? name)
    {
        if (string.IsNullOrWhiteSpace(name)) return null;
        string key = name.Trim().ToLowerInvariant();
        return Entries.FirstOrDefault(e => e.Name == key || e.Aliases.Contains(key));
    }

    /// <summary>
    /// The entry named <paramref name="name"/>, restricted to <paramref name="allowed"/> when given (a front-end that
    /// offers only some strategies). Otherwise a <see cref="StrategyFieldException"/> on <c>strategy</c> that lists the names.
    /// </summary>
    public static StrategyEntry Parse(string? name, IReadOnlyCollection<DecodingStrategy>? allowed = null)
    {
        var offered = allowed is null ? Entries : Entries.Where(e => allowed.Contains(e.Strategy)).ToArray();
        return Find(name) is { } entry && offered.Contains(entry)
            ? entry
            : throw new StrategyFieldException(StrategyFields.Strategy, $"'{name}'", $"must be {Names(offered)}");
    }

    /// <summary>The block selection named <paramref name="name"/> (<c>argmax</c> or <c>sample</c>, any case).</summary>
    public static BlockSelectionMode ParseSelection(string? name) => name?.Trim().ToLowerInvariant() switch
    {
        "argmax" => BlockSelectionMode.Argmax,
        "sample" => BlockSelectionMode.Sample,
        _ => throw new StrategyFieldException(StrategyFields.Selection, $"'{name}'", "must be argmax or sample"),
    };

    /// <summary>"bon, soft-bon, tokenwise, blockwise, beam or rejection".</summary>
    public static string Names(IEnumerable<StrategyEntry> entries)
    {
        var names = entries.Select(e => e.Name).ToArray();
        return names.Length <= 1 ? string.Concat(names) : $"{string.Join(", ", names[..^1])} or {names[^1]}";
    }

    private static T WithPool<T>(this T options, StrategySpec spec) where T : CandidatePoolOptions =>
        options with { N = spec.N ?? options.N, ReturnCandidates = spec.ReturnCandidates ?? false };
}

/// <summary>
/// The named fields every front-end shares: the CLI's flags (<c>--top-k</c>), batch lines and HTTP <c>alignment</c>
/// objects (<c>top_k</c>), the C struct's members and Tilt.Hosting's <c>TiltAlignment</c> map onto these names.
/// </summary>
public static class StrategyFields
{
    /// <summary>The strategy's name (<see cref="StrategyCatalog.Parse"/>).</summary>
    public const string Strategy = "strategy";

    /// <summary>Candidate pools (best-of-n, soft best-of-n, rejection): candidates, return them all, soft best-of-n's lambda.</summary>
    public const string N = "n", ReturnCandidates = "return_candidates", Lambda = "lambda";

    /// <summary>Controlled decoding: blockwise CD's blocks and how one is picked, token-wise CD's candidate tokens, the tilt.</summary>
    public const string K = "k", Block = "block", Selection = "selection", TopK = "top_k", Beta = "beta";

    /// <summary>Beam search: the beams kept after every step (it reads k and block as blockwise CD does).</summary>
    public const string Beams = "beams";

    /// <summary>Early rejection: the fraction stopped, the tokens between decisions, and budget mode's one decision length.</summary>
    public const string Alpha = "alpha", Every = "every", DecideAt = "decide_at";

    /// <summary>Every strategy: independent outputs and the request's wall-clock budget.</summary>
    public const string Samples = "samples", DeadlineMs = "deadline_ms";
}
