using Tilt.Engine.Models;
using Tilt.Engine.Models.Gguf;

namespace Tilt.Engine.Tests.Models;

/// <summary>--native-lib / native_library: a wrong file is refused before LLamaSharp binds it, so the process can go on.</summary>
[Collection(SharedModelCollection.Name)]
public sealed class NativeLibraryProbeTests(SharedModel shared) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-probe-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Libc => new[] { "/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6" }.First(File.Exists);

    [Fact]
    public void ASharedLibraryWithoutTheLlamaSymbolsIsRefusedByName()
    {
        var e = Assert.Throws<TiltException>(() => NativeLibraryProbe.Check(Libc));
        Assert.StartsWith($"{Libc}: is not a llama.cpp library", e.Message);
        Assert.Contains("llama_backend_init", e.Message);
    }

    [Fact]
    public void AFileThatIsNoLibraryOrAFolderIsRefusedByName()
    {
        string text = Path.Combine(_dir, "x.so");
        File.WriteAllText(text, "not elf");
        Assert.StartsWith($"{text}: cannot be loaded as a native library", Assert.Throws<TiltException>(() => NativeLibraryProbe.Check(text)).Message);
        Assert.StartsWith($"{_dir}: is a folder", Assert.Throws<TiltException>(() => NativeLibraryProbe.Check(_dir)).Message);
        Assert.EndsWith("native llama library not found", Assert.Throws<TiltException>(() => NativeLibraryProbe.Check(Path.Combine(_dir, "none.so"))).Message);
    }

    [Fact]
    public void TheBundledLibraryPassesAndAFailedConfigureLeavesTheProcessAbleToLoad()
    {
        // The copy this process already loaded (the shared model), so probing it loads nothing new.
        string bundled = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Last())
            .First(p => p.EndsWith("/libllama.so", StringComparison.Ordinal));
        NativeLibraryProbe.Check(bundled);

        Assert.Throws<TiltException>(() => LlamaNative.Configure(Libc));
        using var again = GgufModel.Load(shared.Path);
        Assert.Equal(shared.Model.Info.Fingerprint, again.Info.Fingerprint);
    }
}
