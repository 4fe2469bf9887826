using System.Diagnostics;

namespace Tilt.Cli.Tests;

/// <summary>
/// Issue 25: SIGTERM and SIGHUP are handled as Ctrl+C is: the command is cancelled, its temporary files are removed, and
/// the process exits with 130. Runs the real executable in a child process, since the signal goes to a whole process.
/// </summary>
public sealed class SignalTests : IDisposable
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-signal-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("TERM")]
    [InlineData("HUP")]
    [InlineData("INT")]
    public async Task ASignalDuringAModelWriteLeavesNoFileAndExits130(string signal)
    {
        string output = Path.Combine(_dir, "m.gguf");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { typeof(Program).Assembly.Location, "make-model", "--preset", "110m", "--vocab", "300", "--type", "f32", "--out", output })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var writing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stderr = new System.Text.StringBuilder();
        // The progress line says the temporary file is open and partly written: the moment to signal. The model (440 MB)
        // takes seconds to write, so the signal comes long before the write could end; only a few percent of it are ever written.
        var reader = Task.Run(async () =>
        {
            var buffer = new char[256];
            int n;
            while ((n = await process.StandardError.ReadAsync(buffer)) > 0)
            {
                lock (stderr)
                {
                    stderr.Append(buffer, 0, n);
                    if (System.Text.RegularExpressions.Regex.IsMatch(stderr.ToString(), "writing [1-9][0-9]?%")) writing.TrySetResult();
                }
            }
            writing.TrySetResult();
        });
        await writing.Task.WaitAsync(Limit);
        Assert.False(process.HasExited, $"the write ended before the signal: {stderr}");
        using (var kill = Process.Start("kill", ["-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
            await kill.WaitForExitAsync();
        await process.WaitForExitAsync().WaitAsync(Limit);
        await reader.WaitAsync(Limit);
        Assert.True(process.ExitCode == 130, $"exit {process.ExitCode}: {stderr}");
        Assert.Contains("cancelled", stderr.ToString());
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }
}
