using System.CommandLine;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt theory</c>: exact best-of-n and aligned-family numbers for small discrete distributions.</summary>
internal static class TheoryCommand
{
    public static Command Create(CliConsole console)
    {
        var theory = new Command("theory", "Exact alignment statistics for discrete distributions (MATH.md M2-M10).");
        return theory;
    }
}
