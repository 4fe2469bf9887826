namespace Tilt.Cli.Commands;

/// <summary>
/// Where each output ends and what it reports: <c>--stop TEXT</c> (repeatable), <c>--include-stop</c> and
/// <c>--logprobs N</c>, shared by the commands that decode.
/// </summary>
internal sealed class OutputFlags
{
    public Option<string[]> Stop { get; } = new("--stop")
    {
        Description = $"Stop string (repeatable, up to {StopSequences.MaxStrings}): a sequence ends as soon as its text contains one, like EOS. \\n and \\t are read as newline and tab.",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<bool> IncludeStop { get; } = new("--include-stop") { Description = "Keep the stop string at the end of the output (default: the text ends before it)." };

    /// <summary><c>--logprobs N</c>: per-token log-probabilities in the JSON output, with N alternatives (0..20).</summary>
    public Option<int?> Logprobs { get; } = new("--logprobs")
    {
        Description = "With --json: each token's log p (T = 1) and its N most likely alternatives (0..20).",
    };

    public Option[] All => [Stop, IncludeStop, Logprobs];

    /// <summary>The stop sequences the flags give, or null when there are none.</summary>
    public StopSequences? Stops(ParseResult parse)
    {
        var strings = parse.GetValue(Stop) ?? [];
        if (strings.Length == 0) return null;
        return StopSequences.FromStrings(strings.Select(s => s.Replace("\\n", "\n").Replace("\\t", "\t")), parse.GetValue(IncludeStop));
    }

    /// <summary><paramref name="options"/> with the stops and log-probabilities the flags ask for.</summary>
    public T Apply<T>(T options, ParseResult parse) where T : DecodingOptions => options with
    {
        Stop = Stops(parse),
        Logprobs = parse.GetValue(Logprobs) is not null,
        TopLogprobs = parse.GetValue(Logprobs) ?? 0,
    };
}
