using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Reflection;
using System.Text.RegularExpressions;
using Tilt.Engine.Rewards;
using Tilt.Tests;

namespace Tilt.Hosting.Tests;

/// <summary>
/// The packages are complete: packs Tilt.Kernels, Tilt.Engine and Tilt.Hosting into a temporary folder, copies
/// examples/TiltService beside it (outside the repository, so none of its Directory.*.props apply), restores it against
/// that folder (third-party packages from the machine's NuGet cache and sources), builds it and runs its one best-of-n
/// request on the default model: the built-in lexicon and llama.cpp's native libraries must come with the packages.
/// </summary>
public sealed class PackageTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tilt-package-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void The_example_service_builds_from_the_packages_alone_and_answers_a_best_of_n_request()
    {
        string configuration = typeof(PackageTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .First(a => a.Key == "Configuration").Value!;
        // A version of this run's own, so no package cached from an earlier pack can stand in for these.
        string version = "0.1.0-test." + Guid.NewGuid().ToString("N")[..12];
        string packages = Path.Combine(_root, "packages");
        string example = Path.Combine(_root, "TiltService");

        // The libraries were built with this test project: pack them as they are.
        Run(TestPaths.RepositoryRoot, TimeSpan.FromMinutes(3), "pack", Path.Combine(TestPaths.RepositoryRoot, "src", "Packages.slnf"),
            "-c", configuration, "--no-build", "-o", packages, $"-p:Version={version}", "-nologo");
        foreach (string id in new[] { "Tilt.Kernels", "Tilt.Engine", "Tilt.Hosting" })
        {
            Assert.True(File.Exists(Path.Combine(packages, $"{id}.{version}.snupkg")), $"{id}: no symbol package");
            using var package = ZipFile.OpenRead(Path.Combine(packages, $"{id}.{version}.nupkg"));
            var entries = package.Entries.Select(e => e.FullName).ToHashSet();
            Assert.Contains($"lib/net10.0/{id}.dll", entries);
            Assert.Contains($"lib/net10.0/{id}.xml", entries);
            Assert.Contains("README.md", entries);
            // llama.cpp's libraries come from the LLamaSharp.Backend.Cpu dependency, not inside these packages.
            Assert.DoesNotContain(entries, e => e.StartsWith("content", StringComparison.Ordinal) || e.StartsWith("runtimes/", StringComparison.Ordinal)
                                                || e.EndsWith(".so", StringComparison.Ordinal));
            string nuspec = new StreamReader(package.GetEntry($"{id}.nuspec")!.Open()).ReadToEnd();
            Assert.Contains("<license type=\"expression\">", nuspec);
            Assert.Contains("<description>", nuspec);
        }

        CopyExample(Path.Combine(TestPaths.RepositoryRoot, "examples", "TiltService"), example);
        string global = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } cache
            ? cache
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // Its own package folder keeps this run's Tilt packages out of the machine's cache; the cache is only read from.
        Run(example, TimeSpan.FromMinutes(5), "build", "-c", "Release", "-nologo", $"-p:TiltVersion={version}",
            $"-p:RestorePackagesPath={Path.Combine(_root, "nuget")}", $"-p:RestoreFallbackFolders={global}");
        Assert.True(Directory.Exists(Path.Combine(_root, "nuget", "tilt.engine", version)), "Tilt.Engine was not restored from the test's package folder");

        string output = Run(example, TimeSpan.FromMinutes(2), Path.Combine(example, "bin", "Release", "net10.0", "TiltService.dll"),
            "--model", TestPaths.DefaultModel);
        var reward = Regex.Match(output, @"^reward (?<r>-?[0-9.]+) \(lexicon:sentiment, best of 8\)", RegexOptions.Multiline, TimeSpan.FromSeconds(5));
        Assert.True(reward.Success, output);
        // The line before the reward is the prompt and the winner's text: the text's reward under the source tree's
        // lexicon must be the one the packaged engine computed.
        string[] lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        string line = lines[Array.FindIndex(lines, l => l.StartsWith("reward ", StringComparison.Ordinal)) - 1];
        Assert.StartsWith("Once upon a time", line);
        string text = line["Once upon a time".Length..];
        Assert.Equal(LexiconReward.LoadBuiltIn(LexiconReward.Sentiment, Path.Combine(TestPaths.RepositoryRoot, "src", "Engine", "Rewards", "Lexicons")).ScoreText(text),
            double.Parse(reward.Groups["r"].Value, CultureInfo.InvariantCulture));
        Assert.Matches(@"start-up [0-9]+ ms .*first request [0-9]+ ms", output);
        Assert.Matches(@"chat: reward -?[0-9.]+, KL [0-9.]+ nats \(best_of_n_estimate\), [0-9]+ output tokens", output);
    }

    private static void CopyExample(string from, string to)
    {
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(from, file);
            if (relative.Split(Path.DirectorySeparatorChar)[0] is "bin" or "obj") continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, relative))!);
            File.Copy(file, Path.Combine(to, relative));
        }
    }

    /// <summary>Runs dotnet with <paramref name="arguments"/>; its output, or a failed assertion with it.</summary>
    private static string Run(string directory, TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        // The test host's MSBuild settings would steer the child's build to the test's SDK paths.
        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(key);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment.Remove("TILT_MODEL");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', arguments)} ran past {timeout}:\n{stdout.Result}\n{stderr.Result}");
        }

        string output = stdout.Result + stderr.Result;
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{output}");
        return output;
    }
}
