using System.Runtime.InteropServices;
using Tilt.Cli.Commands;

namespace Tilt.Cli;

/// <summary>Entry point of the <c>tilt</c> command line.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // Ctrl+C, SIGTERM and SIGHUP all cancel the command's token and let it finish its own way (print what is done,
        // remove temporary files, exit 130: "cancelled", whichever signal it was); a second signal ends the process at
        // once (the runtime's default, which still runs the exit handlers that remove temporary files).
        using var cancel = new CancellationTokenSource();
        void Cancel(PosixSignalContext context)
        {
            if (cancel.IsCancellationRequested) return;
            context.Cancel = true;
            cancel.Cancel();
        }
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        using var hangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Cancel);
        return await RunAsync(args, Console.Out, Console.Error, cancel.Token).ConfigureAwait(false);
    }

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
        root.Subcommands.Add(ScoreCommand.Create(console));
        root.Subcommands.Add(TheoryCommand.Create(console));
        root.Subcommands.Add(TrainCommand.Create(console));
        root.Subcommands.Add(DataCommand.Create(console));
        root.Subcommands.Add(EvaluateCommand.Create(console));
        root.Subcommands.Add(ExportCommand.Create(console));
        root.Subcommands.Add(MakeModelCommand.Create(console));
        root.Subcommands.Add(HeadCommand.Create(console));
        root.Subcommands.Add(ServeCommand.Create(console));
        root.Subcommands.Add(RejectionCommand.Create(console));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // A value that does not parse is a user error like any other: one line naming it, exit 2 (not the
            // parser's exit 1 with the whole help text).
            foreach (var error in parse.Errors)
                await stderr.WriteLineAsync($"error: {error.Message.ReplaceLineEndings(" ").Trim()}").ConfigureAwait(false);
            await stderr.WriteLineAsync($"(see: {string.Join(' ', CommandPath(parse.CommandResult.Command, root).Prepend("tilt").Append("--help"))})").ConfigureAwait(false);
            return CliConsole.UserErrorExitCode;
        }
        // No process-termination handling of System.CommandLine's own: it would end the process two seconds after
        // Ctrl+C whatever the command was doing (Main cancels the token instead).
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, ProcessTerminationTimeout = null };
        return await parse.InvokeAsync(config, cancellationToken).ConfigureAwait(false);
    }

    private static IEnumerable<string> CommandPath(Command command, RootCommand root)
    {
        var names = new Stack<string>();
        for (Command? c = command; c is not null && c != root; c = c.Parents.OfType<Command>().FirstOrDefault())
            names.Push(c.Name);
        return names;
    }
}
