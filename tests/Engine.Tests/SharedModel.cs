using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;

namespace Tilt.Engine.Tests;

/// <summary>
/// The real stories260K model from ../shared/models, loaded once for all tests that need it and
/// verified against the sha256 its README gives, so a swapped file cannot pass silently.
/// </summary>
public sealed class SharedModel : IDisposable
{
    public SharedModel()
    {
        // $TILT_MODEL overrides the location; the sha256 test still insists on the same file.
        Path = Tilt.Tests.TestPaths.DefaultModel;
        Model = GgufModel.Load(Path);
    }

    public string Path { get; }
    public GgufModel Model { get; }

    public void Dispose() => Model.Dispose();
}

[CollectionDefinition(Name)]
public sealed class SharedModelCollection : ICollectionFixture<SharedModel>
{
    public const string Name = "stories260K";
}
