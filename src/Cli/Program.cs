using System.CommandLine;
using Tilt.Cli.Commands;

namespace Tilt.Cli;

/// <summary>Entry point of the <c>tilt</c> command line.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => RunAsync(args, Console.Out, Console.Error);

    /// <summary>
    /// Runs the command line with explicit writers so tests can drive it in-process and read what a
    /// user would see. Returns the process exit code.
    /// </summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        var root = new RootCommand("tilt: inference-time alignment of GGUF language models (best-of-n, controlled decoding).");
        var console = new CliConsole(stdout, stderr);
        root.Subcommands.Add(GenerateCommand.Create(console));
        root.Subcommands.Add(AlignCommand.Create(console));
        root.Subcommands.Add(TheoryCommand.Create(console));
        root.Subcommands.Add(TrainCommand.Create(console));
        root.Subcommands.Add(DataCommand.Create(console));
        root.Subcommands.Add(EvaluateCommand.Create(console));
        root.Subcommands.Add(MakeModelCommand.Create(console));
        root.Subcommands.Add(ServeCommand.Create(console));

        var parse = root.Parse(args);
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        return await parse.InvokeAsync(config, cancellationToken).ConfigureAwait(false);
    }
}
