using System.Runtime.InteropServices;
using Tilt.Engine.Models.Gguf;

namespace Tilt.Engine.Tests.Models;

/// <summary>The process-wide llama.cpp setup: OpenMP's wait policy in the C environment, the ABI check of a library.</summary>
[Collection(SharedModelCollection.Name)]
public sealed class LlamaNativeTests(SharedModel shared) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-native-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TheWaitPolicyReachesTheEnvironmentLibgompReads()
    {
        Assert.NotNull(shared.Model); // the model is loaded, so LlamaNative has configured the process
        if (!OperatingSystem.IsLinux()) return;
        string? policy = Marshal.PtrToStringUTF8(getenv("OMP_WAIT_POLICY"));
        string? spin = Marshal.PtrToStringUTF8(getenv("GOMP_SPINCOUNT"));
        // The engine sets its bounded spin in libc's environ unless the user chose a policy or spin count before the
        // start: /proc/self/environ still holds the environment the process started with.
        var initial = File.ReadAllText("/proc/self/environ").Split('\0').Select(kv => kv.Split('=', 2)[0]).ToHashSet();
        if (!initial.Contains("OMP_WAIT_POLICY") && !initial.Contains("GOMP_SPINCOUNT"))
        {
            Assert.Null(policy);
            Assert.Equal(OpenMpWaitPolicy.DefaultSpinCount, spin);
        }
        Assert.Contains(policy is null ? "OMP_WAIT_POLICY unset" : $"OMP_WAIT_POLICY={policy}", LlamaNative.OpenMpSettings);
        Assert.Contains(spin is null ? "GOMP_SPINCOUNT unset" : $"GOMP_SPINCOUNT={spin}", LlamaNative.OpenMpSettings);
    }

    [Fact]
    public void TheBundledLibraryPassesTheAbiCheck()
    {
        Assert.NotNull(shared.Model);
        if (!OperatingSystem.IsLinux()) return;
        // The libllama this process bound, as the loader mapped it.
        string path = File.ReadAllLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && f[5].EndsWith("/libllama.so", StringComparison.Ordinal)).Select(f => f[5]).First();
        nint handle = NativeLibrary.Load(path);
        string? problem = LlamaAbi.Inspect(handle);
        Assert.True(problem is null, problem);
        LlamaAbi.Check(path);
    }

    [Fact]
    public void ALibraryWithoutLlamaIsRefusedByName()
    {
        if (!OperatingSystem.IsLinux()) return;
        nint libc = NativeLibrary.Load("libc.so.6");
        string? problem = LlamaAbi.Inspect(libc);
        Assert.NotNull(problem);
        Assert.Contains("lacks llama_backend_init", problem);
        Assert.Contains(LlamaAbi.ExpectedCommit, problem);
    }

    [Fact]
    public void AFileThatIsNoLibraryIsRefused()
    {
        string path = Path.Combine(_dir, "libllama.so");
        File.WriteAllText(path, "not an ELF file");
        var e = Assert.Throws<TiltException>(() => LlamaAbi.Check(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("not a loadable native library", e.Message);
    }

    [DllImport("libc.so.6", EntryPoint = "getenv")]
    private static extern nint getenv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);
}
