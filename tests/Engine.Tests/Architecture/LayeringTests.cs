namespace Tilt.Engine.Tests.Architecture;

/// <summary>
/// Layers depend one way (docs/architecture.md, "Layout"): no namespace of Tilt.Engine may depend, directly or through
/// others, on a namespace that depends on it. The graph is read from the compiled assembly (<see cref="NamespaceGraph"/>).
/// </summary>
public sealed class LayeringTests
{
    [Fact]
    public void EngineNamespacesHaveNoCycles()
    {
        var graph = NamespaceGraph.Build(typeof(Tilt.Engine.Decoding.DecodingEngine).Assembly, "Tilt.Engine", out var why);
        var cycles = NamespaceGraph.Cycles(graph);
        string Describe(List<string> c) => string.Join(", ", c) + ":\n" +
            string.Join("\n", c.SelectMany(a => graph[a].Where(c.Contains).Select(b => $"  {a} -> {b} ({string.Join(", ", why[$"{a} -> {b}"])})")));
        Assert.True(cycles.Count == 0, "namespace cycles: " + string.Join("\n", cycles.Select(Describe)));
    }

    [Fact]
    public void TheCycleCheckFindsACycle()
    {
        // The check itself can fail: a two-namespace cycle and a three-namespace one are found, a chain is not.
        var graph = new Dictionary<string, HashSet<string>>
        {
            ["A"] = ["B"], ["B"] = ["A", "C"], ["C"] = ["D"], ["D"] = ["E"], ["E"] = ["C"], ["F"] = ["A"],
        };
        var cycles = NamespaceGraph.Cycles(graph);
        Assert.Equal(2, cycles.Count);
        Assert.Contains(cycles, c => c.SequenceEqual(["A", "B"]));
        Assert.Contains(cycles, c => c.SequenceEqual(["C", "D", "E"]));
    }
}
