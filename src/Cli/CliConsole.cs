namespace Tilt.Cli;

/// <summary>
/// Where a command writes, and the one place that turns user errors into a message and an exit code.
/// User errors (<see cref="TiltException"/>, <see cref="ArgumentException"/>) print one line naming the
/// problem and no stack trace; anything else is a bug and keeps its stack trace.
/// </summary>
public sealed class CliConsole(TextWriter stdout, TextWriter stderr)
{
    /// <summary>Exit code for a user error (bad file, bad value).</summary>
    public const int UserErrorExitCode = 2;

    /// <summary>Exit code for a cancelled run (Ctrl+C).</summary>
    public const int CancelledExitCode = 130;

    public TextWriter Out { get; } = stdout;
    public TextWriter Error { get; } = stderr;

    /// <summary>Runs a command body, mapping user errors to <see cref="UserErrorExitCode"/>.</summary>
    public async Task<int> GuardAsync(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Error.WriteLine("cancelled");
            return CancelledExitCode;
        }
        catch (Exception e) when (e is TiltException or ArgumentException)
        {
            Error.WriteLine($"error: {OneLine(e)}");
            return UserErrorExitCode;
        }
    }

    /// <summary>
    /// The message on one line. Argument exceptions append " (Parameter 'x')" and the actual value on
    /// further lines; the engine's messages already name the field and value, so that tail is dropped.
    /// </summary>
    private static string OneLine(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentException && message.IndexOf(" (Parameter '", StringComparison.Ordinal) is var cut and > 0)
            message = message[..cut];
        return message.ReplaceLineEndings(" ");
    }

    /// <summary>
    /// Says so when a command-line prompt holds U+FFFD: .NET decodes the arguments as UTF-8 and replaces invalid
    /// bytes by it, so the model would otherwise see other text than the user typed without a word.
    /// </summary>
    public string CheckPrompt(string text, string option = "--prompt")
    {
        ArgumentNullException.ThrowIfNull(text);
        int at = text.IndexOf('\uFFFD', StringComparison.Ordinal);
        if (at >= 0)
            Error.WriteLine($"warning: {option} is not valid UTF-8: invalid bytes were replaced by U+FFFD (first at character {at}); the model sees the replaced text");
        return text;
    }

    /// <summary>Synchronous form of <see cref="GuardAsync"/>.</summary>
    public int Guard(Func<int> body) => GuardAsync(() => Task.FromResult(body())).GetAwaiter().GetResult();
}
