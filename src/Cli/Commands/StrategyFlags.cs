namespace Tilt.Cli.Commands;

/// <summary>
/// The strategies' named fields (<see cref="StrategyFields"/>) as flags: <c>--n</c>, <c>--k</c>, <c>--block</c>,
/// <c>--top-k</c>, ... shared by <c>align</c> and <c>export</c>, read into a <see cref="StrategySpec"/>.
/// </summary>
internal sealed class StrategyFlags
{
    public Option<int> N { get; } = new("--n") { Description = "Best-of-n, soft best-of-n and rejection: candidates (1..256).", DefaultValueFactory = _ => 8 };
    public Option<int> K { get; } = new("--k") { Description = "Blockwise and beam: candidate blocks per step (1..256).", DefaultValueFactory = _ => 8 };
    public Option<int> Block { get; } = new("--block") { Description = "Blockwise and beam: tokens per block (M).", DefaultValueFactory = _ => 8 };
    public Option<int> Beams { get; } = new("--beams") { Description = "Beam: beams kept after every step (1..k; 1 is blockwise CD) [M29].", DefaultValueFactory = _ => 2 };
    public Option<BlockSelectionMode> Selection { get; } = new("--selection") { Description = "Blockwise: Argmax or Sample (∝ exp(V/beta)).", DefaultValueFactory = _ => BlockSelectionMode.Argmax };
    public Option<double> Beta { get; } = new("--beta") { Description = "Tilt strength (token-wise; blockwise with --selection Sample).", DefaultValueFactory = _ => 1.0 };
    public Option<int> TopK { get; } = new("--top-k") { Description = "Token-wise: candidate tokens per step (top-k of p); 0 = whole vocabulary.", DefaultValueFactory = _ => 16 };
    public Option<double> Lambda { get; } = new("--lambda")
    {
        Description = "Soft best-of-n: selection temperature, the winner drawn ∝ exp(r/lambda) (small: best-of-n; large: the base model) [M27].", DefaultValueFactory = _ => 1.0,
    };
    public Option<double> Alpha { get; } = new("--alpha") { Description = "Rejection: fraction of the unfinished candidates stopped at each decision, in [0, 1).", DefaultValueFactory = _ => 0.5 };
    public Option<int> Every { get; } = new("--every") { Description = "Rejection: generated tokens between decisions.", DefaultValueFactory = _ => 8 };
    public Option<string?> DecideAt { get; } = new("--decide-at")
    {
        Description = "Rejection, budget mode: ONE decision when the candidates have TOKENS tokens (instead of one every --every), or auto: the smallest " +
            $"length that keeps best-of-n's winner with probability >= {RejectionCommand.AutoTarget} in --calibration FILE (tilt rejection calibrate). " +
            "Measured on stories260K with lexicon:sentiment (docs/results/stories260K-rejection-budget): the prefix reward's rank correlation with the " +
            "final reward is ~0.1 up to 4 tokens, 0.28 at 8, 0.5 at 16, 0.73 at 32; --n 64 --alpha 0.75 --decide-at 16 or 32 beat best-of-n at equal " +
            "tokens evaluated there (95% intervals apart on shared draws; t = 16 also in engine runs), decisions at <= 8 tokens did not; " +
            "with the MiniLM similarity reward (correlation 0.27 at 8, 0.64 at 32, a flat best-of-n curve) no setting did; see docs/rejection.md.",
    };
    public Option<string?> Calibration { get; } = new("--calibration") { Description = "Rejection: the calibration JSON --decide-at auto reads (tilt rejection calibrate --out)." };
    public Option<int> Samples { get; } = new("--samples") { Description = "Independent aligned outputs (for statistics).", DefaultValueFactory = _ => 1 };
    public Option<int?> DeadlineMs { get; } = new("--deadline-ms") { Description = "Wall-clock budget in milliseconds; an output cut by it is marked partial." };
    public Option<bool> Candidates { get; } = new("--candidates") { Description = "Best-of-n and rejection: also print every candidate with its reward." };

    /// <summary>The fields of the strategies that draw whole candidates (best-of-n, soft best-of-n, blockwise, rejection).</summary>
    public Option[] CandidateFields => [N, K, Block, Alpha, Lambda, Every];

    /// <summary>Every field, for a command that offers every strategy.</summary>
    public Option[] All => [N, K, Block, Beams, Selection, Beta, TopK, Samples, DeadlineMs, Candidates, Alpha, Lambda, Every, DecideAt, Calibration];

    /// <summary>The fields this command has, as given (or their defaults); those it lacks stay null, the strategy's default.</summary>
    public StrategySpec Spec(ParseResult parse, DecodingStrategy strategy)
    {
        var command = parse.CommandResult.Command;
        T? Get<T>(Option<T> option) where T : struct => command.Options.Contains(option) ? parse.GetValue(option) : null;
        return new StrategySpec
        {
            Strategy = strategy,
            N = Get(N), K = Get(K), Block = Get(Block), Beams = Get(Beams), Selection = Get(Selection), Beta = Get(Beta), TopK = Get(TopK), Lambda = Get(Lambda),
            Alpha = Get(Alpha), Every = Get(Every), Samples = Get(Samples), ReturnCandidates = Get(Candidates),
            DecideAt = command.Options.Contains(DecideAt) ? DecisionLength(parse, strategy, Get(N), Get(Alpha)) : null,
            DeadlineMs = command.Options.Contains(DeadlineMs) ? parse.GetValue(DeadlineMs) : null,
        };
    }

    /// <summary>
    /// <c>--decide-at</c>: a number of tokens, or <c>auto</c> read from <c>--calibration FILE</c> for the request's n and alpha
    /// (only the CLI reads files; HTTP and batch lines take a number).
    /// </summary>
    private int? DecisionLength(ParseResult parse, DecodingStrategy strategy, int? n, double? alpha)
    {
        string? text = parse.GetValue(DecideAt);
        string? file = parse.GetValue(Calibration);
        if (text is null)
        {
            if (file is not null && strategy == DecodingStrategy.Rejection) throw new ArgumentException("--calibration is read by --decide-at auto only");
            return null;
        }
        if (text.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            if (strategy != DecodingStrategy.Rejection) return null;
            var defaults = new RejectionOptions();
            return RejectionCommand.DecisionLength(file ?? throw new ArgumentException("--decide-at auto needs --calibration FILE (tilt rejection calibrate --out FILE)"),
                n ?? defaults.N, alpha ?? defaults.Alpha);
        }
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int tokens)
            ? tokens
            : throw new ArgumentException($"--decide-at must be a number of tokens or auto, got '{text}'");
    }

    /// <summary>The flag of a named field: <c>top_k</c> -> <c>--top-k</c>.</summary>
    public static string Flag(string field) => field switch
    {
        StrategyFields.ReturnCandidates => "--candidates",
        _ => "--" + field.Replace('_', '-'),
    };

    /// <summary>A catalogue error with the field spelled as its flag ("--k must be between 1 and 256, got 0").</summary>
    public static ArgumentException Error(StrategyFieldException e) => new(e.MessageFor(Flag(e.Field)));

    /// <summary>Builds <paramref name="spec"/>, a bad field reported as its flag.</summary>
    public static AlignOptions Build(StrategySpec spec, StrategyLimits limits)
    {
        try
        {
            return spec.Build(limits);
        }
        catch (StrategyFieldException e)
        {
            throw Error(e);
        }
    }

    /// <summary><c>--strategy</c>, parsed by the catalogue; <paramref name="allowed"/> when the command offers only some.</summary>
    public static StrategyEntry ParseStrategy(string? name, IReadOnlyCollection<DecodingStrategy>? allowed = null)
    {
        try
        {
            return StrategyCatalog.Parse(name, allowed);
        }
        catch (StrategyFieldException e)
        {
            throw Error(e);
        }
    }
}
