using Tilt.Engine.Models;

namespace Tilt.Cli.Tests;

/// <summary>Runs the command line in-process and captures what a user would see.</summary>
internal static class CliRunner
{
    public sealed record Outcome(int ExitCode, string Out, string Error);

    public static async Task<Outcome> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = await Program.RunAsync(args, stdout, stderr);
        return new Outcome(code, stdout.ToString(), stderr.ToString());
    }

    public static string ModelPath => Tilt.Tests.TestPaths.DefaultModel;

    public static string TabularExample() => Tilt.Tests.TestPaths.TabularExample;
}
