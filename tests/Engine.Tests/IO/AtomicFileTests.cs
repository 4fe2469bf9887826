using Tilt.Engine.IO;

namespace Tilt.Engine.Tests.IO;

/// <summary>The one write routine of every output: complete files or nothing, and never a temporary file left behind.</summary>
public sealed class AtomicFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-atomic-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    [Fact]
    public void AWriteReplacesTheTargetAndLeavesOnlyIt()
    {
        string path = PathOf("a.txt");
        File.WriteAllText(path, "old");
        AtomicFile.WriteAllText(path, "new");
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void AWriteThatFailsHalfwayKeepsTheOldFileAndRemovesItsTemporary()
    {
        string path = PathOf("a.bin");
        File.WriteAllText(path, "old");
        var e = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[100_000]);
            throw new InvalidOperationException("the producer failed");
        }));
        Assert.Equal("the producer failed", e.Message);
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void ACancelledWriteLeavesNothing()
    {
        using var cts = new CancellationTokenSource();
        string path = PathOf("m.gguf");
        Assert.ThrowsAny<OperationCanceledException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[4096]);
            cts.Cancel();
            cts.Token.ThrowIfCancellationRequested();
        }, cts.Token));
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void TargetsThatCannotBeWrittenAreNamedWithTheReason()
    {
        string file = PathOf("file");
        File.WriteAllText(file, "x");
        Assert.Equal($"{_dir}: is a folder; give a file name", Assert.Throws<TiltException>(() => AtomicFile.CheckTarget(_dir)).Message);
        Assert.Contains("is a folder", Assert.Throws<TiltException>(() => AtomicFile.CheckTarget(_dir + "/")).Message);
        Assert.Equal($"{file}/x.head: {file} is a file, not a folder", Assert.Throws<TiltException>(() => AtomicFile.CheckTarget(file + "/x.head")).Message);
        Assert.Contains("the folder " + PathOf("missing") + " does not exist", Assert.Throws<TiltException>(() => AtomicFile.CheckTarget(PathOf("missing/x.head"))).Message);
        Assert.StartsWith("/proc/x.head: cannot write in /proc", Assert.Throws<TiltException>(() => AtomicFile.CheckTarget("/proc/x.head")).Message);
        Assert.Throws<TiltException>(() => AtomicFile.WriteAllText(_dir, "x"));
        Assert.Equal([file], Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public void FoldersAreCreatedOrRefusedWhenTheyAreFiles()
    {
        string created = AtomicFile.EnsureFolder(PathOf("a/b"));
        Assert.True(Directory.Exists(created));
        string file = PathOf("file");
        File.WriteAllText(file, "x");
        Assert.Equal($"{file}: is a file; give a folder", Assert.Throws<TiltException>(() => AtomicFile.EnsureFolder(file)).Message);
        Assert.Contains($"{file} is a file, not a folder", Assert.Throws<TiltException>(() => AtomicFile.EnsureFolder(file + "/sub")).Message);
    }
}
