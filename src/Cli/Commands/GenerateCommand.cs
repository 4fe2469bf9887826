using System.CommandLine;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt generate</c>: base-model sampling of n parallel continuations.</summary>
internal static class GenerateCommand
{
    public static Command Create(CliConsole console)
    {
        var generate = new Command("generate", "Sample n continuations of a prompt from the base model in one batch.");
        return generate;
    }
}
