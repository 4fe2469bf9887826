using System.Text.RegularExpressions;

using Tilt.Tests;

namespace Tilt.Engine.Tests.Documentation;

/// <summary>Every [Mn] label the code, tests and docs cite is defined in docs/math.md, and the files the README runs exist.</summary>
public sealed partial class MathDocTests
{
    [GeneratedRegex(@"\[M(\d+)\]")]
    private static partial Regex Label();

    [GeneratedRegex(@"^- \*\*\[M(\d+)\]", RegexOptions.Multiline)]
    private static partial Regex Definition();

    [Fact]
    public void Every_cited_label_is_defined_in_docs_math_md()
    {
        string root = TestPaths.RepositoryRoot;
        var defined = Definition().Matches(File.ReadAllText(Path.Combine(root, "docs", "math.md")))
            .Select(m => int.Parse(m.Groups[1].Value)).ToHashSet();
        Assert.Equal(Enumerable.Range(1, 29), defined.Order());

        var files = new[] { "src", "tests", "docs" }
            .SelectMany(d => Directory.EnumerateFiles(Path.Combine(root, d), "*.*", SearchOption.AllDirectories))
            .Where(f => f.EndsWith(".cs", StringComparison.Ordinal) || f.EndsWith(".md", StringComparison.Ordinal))
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Append(Path.Combine(root, "README.md"));
        var undefined = files
            .SelectMany(f => Label().Matches(File.ReadAllText(f)).Select(m => (File: Path.GetRelativePath(root, f), Label: int.Parse(m.Groups[1].Value))))
            .Where(x => !defined.Contains(x.Label))
            .Select(x => $"{x.File}: [M{x.Label}]")
            .Distinct()
            .ToArray();
        Assert.Empty(undefined);
    }

    [Fact]
    public void The_readme_cites_docs_math_md_and_its_prompt_file_exists()
    {
        string root = TestPaths.RepositoryRoot;
        string readme = File.ReadAllText(Path.Combine(root, "README.md"));
        Assert.DoesNotContain("MATH.md", readme, StringComparison.Ordinal);
        Assert.Contains("(docs/math.md)", readme, StringComparison.Ordinal);
        Assert.Contains("--prompts examples/prompts.txt", readme, StringComparison.Ordinal);
        var prompts = File.ReadAllLines(Path.Combine(root, "examples", "prompts.txt"));
        Assert.Equal(8, prompts.Length);
        Assert.All(prompts, p => Assert.False(string.IsNullOrWhiteSpace(p)));
    }
}
