using System.Security.Cryptography;

namespace Tilt.Engine.Tests.Rewards.Neural;

/// <summary>
/// The real all-MiniLM-L6-v2 embedding model in ../shared/models, checked against the sha256 its README gives (so a
/// swapped file cannot pass silently); rewards on it share one ONNX Runtime session per process.
/// </summary>
public sealed class MiniLm
{
    public const string ModelSha256 = "4a64cee3d4134bbdc86eed96e1a660efec58975417204ecfcf134140edb6e0e2";
    public const string VocabSha256 = "b49e80874c5efbc7f4cde245a812673b05ef1360ced56b8bc8c750eaeef3fe0f";

    public MiniLm()
    {
        Folder = Path.GetFullPath(Path.Combine(Tilt.Tests.TestPaths.RepositoryRoot, "..", "shared", "models", "all-MiniLM-L6-v2"));
        ModelPath = Path.Combine(Folder, "model.onnx");
        VocabPath = Path.Combine(Folder, "vocab.txt");
        ModelHash = Sha256(ModelPath);
        VocabHash = Sha256(VocabPath);
    }

    public string Folder { get; }
    public string ModelPath { get; }
    public string VocabPath { get; }
    public string ModelHash { get; }
    public string VocabHash { get; }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}

[CollectionDefinition(Name)]
public sealed class MiniLmCollection : ICollectionFixture<MiniLm>
{
    public const string Name = "all-MiniLM-L6-v2";
}
