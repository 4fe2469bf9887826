namespace Tilt.Engine;

/// <summary>
/// A problem with the user's input or environment (a file, a field, a value) that the user can fix.
/// The command line prints <see cref="Exception.Message"/> without a stack trace and exits non-zero;
/// the C API turns it into a status code and a last-error string.
/// </summary>
public class TiltException : Exception
{
    public TiltException(string message) : base(message) { }
    public TiltException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A model file (GGUF or tabular JSON) is missing, unreadable or malformed.</summary>
public sealed class ModelLoadException : TiltException
{
    public ModelLoadException(string path, string problem) : base($"{path}: {problem}") => ModelPath = path;
    public ModelLoadException(string path, string problem, Exception inner) : base($"{path}: {problem}", inner) => ModelPath = path;

    /// <summary>The file the problem is about.</summary>
    public string ModelPath { get; }
}

/// <summary>A request does not fit the model or the session (prompt longer than the context, too many sequences).</summary>
public sealed class RequestException : TiltException
{
    public RequestException(string message) : base(message) { }
}
