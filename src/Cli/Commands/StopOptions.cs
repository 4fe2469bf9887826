namespace Tilt.Cli.Commands;

/// <summary><c>--stop TEXT</c> (repeatable) and <c>--include-stop</c>, shared by the commands that decode.</summary>
internal static class StopOptions
{
    public static Option<string[]> Create() => new("--stop")
    {
        Description = $"Stop string (repeatable, up to {StopSequences.MaxStrings}): a sequence ends as soon as its text contains one, like EOS. \\n and \\t are read as newline and tab.",
        AllowMultipleArgumentsPerToken = false,
    };

    public static Option<bool> CreateInclude() => new("--include-stop") { Description = "Keep the stop string at the end of the output (default: the text ends before it)." };

    /// <summary>The stop sequences the options give, or null when there are none.</summary>
    public static StopSequences? Get(ParseResult parse, Option<string[]> stop, Option<bool> include)
    {
        var strings = parse.GetValue(stop) ?? [];
        if (strings.Length == 0) return null;
        return StopSequences.FromStrings(strings.Select(s => s.Replace("\\n", "\n").Replace("\\t", "\t")), parse.GetValue(include));
    }
}
