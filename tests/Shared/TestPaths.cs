using System.Reflection;
using Tilt.Engine.Models;

namespace Tilt.Tests;

/// <summary>
/// Paths the tests need, anchored at the repository root recorded at build time (so they hold wherever the build
/// output goes, e.g. with --artifacts-path).
/// </summary>
internal static class TestPaths
{
    public static string RepositoryRoot { get; } = Path.GetFullPath(
        typeof(TestPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "RepositoryRoot").Value!);

    /// <summary>The shared stories260K.gguf: $TILT_MODEL, else ../shared/models beside the repository.</summary>
    public static string DefaultModel =>
        Environment.GetEnvironmentVariable(Tilt.Engine.Models.DefaultModel.EnvironmentVariable) is { Length: > 0 } path
            ? path
            : Path.Combine(RepositoryRoot, "..", "shared", "models", Tilt.Engine.Models.DefaultModel.FileName);

    /// <summary>examples/tabular/story.json.</summary>
    public static string TabularExample => Path.Combine(RepositoryRoot, "examples", "tabular", "story.json");
}
