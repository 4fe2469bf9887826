namespace Tilt.Engine.Models;

/// <summary>
/// Where the default model lives: the environment variable <c>TILT_MODEL</c> when set, otherwise
/// stories260K.gguf in the shared models folder beside the project (../shared/models from the project
/// root), found by walking up from the working directory and from the program's own folder.
/// </summary>
public static class DefaultModel
{
    public const string EnvironmentVariable = "TILT_MODEL";
    public const string FileName = "stories260K.gguf";

    /// <summary>sha256 of the shared stories260K.gguf (from its README).</summary>
    public const string Stories260KSha256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d";

    /// <summary>The default model's path, or a <see cref="TiltException"/> saying where it looked.</summary>
    public static string Resolve()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment)) return fromEnvironment;
        return Find() ?? throw new TiltException(
            $"default model {FileName} not found in ../shared/models (searched up from {Directory.GetCurrentDirectory()} and {AppContext.BaseDirectory}); " +
            $"pass --model or set {EnvironmentVariable}");
    }

    /// <summary>The shared stories260K.gguf, or null when it is not beside the project.</summary>
    public static string? Find()
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                foreach (string candidate in new[]
                         {
                             Path.Combine(dir.FullName, "shared", "models", FileName),
                             Path.Combine(dir.FullName, "..", "shared", "models", FileName),
                         })
                {
                    if (File.Exists(candidate)) return Path.GetFullPath(candidate);
                }
            }
        }
        return null;
    }
}
