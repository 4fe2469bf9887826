using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Tilt.Engine.IO;

namespace Tilt.Cli.Tests;

/// <summary>
/// Issue 25: devices, FIFOs and pseudo-file systems as inputs and outputs, and the other inputs that used to end in an
/// unhandled exception. Every case is one "error: ..." line naming the problem, exit code 2, no stack trace, and
/// nothing replaced or left behind.
/// </summary>
public sealed class SpecialFileTests : IDisposable
{
    // A bound on a run that used to hang (a FIFO opened for reading waits for a writer): a failure, not a wait for an event.
    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(60);

    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-special-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static string Tabular => CliRunner.TabularExample();

    private static void AssertUserError(CliRunner.Outcome run, string expected)
    {
        Assert.True(run.ExitCode == 2, $"exit {run.ExitCode}: {run.Error}");
        Assert.StartsWith("error: ", run.Error);
        Assert.Contains(expected, run.Error);
        Assert.DoesNotContain("   at ", run.Error);
    }

    private static async Task<CliRunner.Outcome> RunBounded(params string[] args) => await CliRunner.RunAsync(args).WaitAsync(HangLimit);

    private string MakeFifo(string name)
    {
        string path = PathOf(name);
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
        Assert.Equal("FIFO (named pipe)", InputFile.NonRegularKind(path));
        return path;
    }

    [Theory]
    [InlineData("align", "--reward", "lexicon:/dev/zero")]
    [InlineData("align", "--reward", "lexicon:/dev/urandom")]
    [InlineData("align", "--reward", "head:/dev/zero")]
    [InlineData("align", "--strategy", "blockwise", "--value-head", "/dev/zero")]
    [InlineData("train", "reward", "--pairs", "/dev/zero", "--out", "OUT")]
    [InlineData("train", "value", "--reward", "length:3", "--prompts", "/dev/zero", "--out", "OUT")]
    [InlineData("export", "--reward", "length:3", "--prompts", "/dev/zero", "--out", "OUT")]
    [InlineData("evaluate", "--reward", "length:3", "--prompts", "/dev/zero", "--out", "OUTDIR")]
    [InlineData("align", "--requests", "/dev/zero", "--out", "OUT")]
    [InlineData("serve", "--port", "0", "--rewards", "/dev/zero")]
    public async Task DevicesAsInputsAreRefusedAtOnceByName(params string[] args)
    {
        string device = args.First(a => a.Contains("/dev/", StringComparison.Ordinal));
        device = device[device.IndexOf("/dev/", StringComparison.Ordinal)..];
        string[] full = [.. args.Select(a => a switch { "OUT" => PathOf("out"), "OUTDIR" => _dir, _ => a }), "--model", Tabular];
        AssertUserError(await RunBounded(full), $"{device}: is a character device, not a regular file");
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task DevicesAsModelsAreRefused()
    {
        AssertUserError(await RunBounded("generate", "--model", "/dev/zero"), "/dev/zero: is a character device, not a regular file (a model file must be a regular file)");
        AssertUserError(await RunBounded("generate", "--model", ""), "--model is empty");
    }

    [Fact]
    public async Task FifosAsInputsAreRefusedWithoutOpeningThem()
    {
        string fifo = MakeFifo("in.fifo");
        AssertUserError(await RunBounded("generate", "--model", fifo), $"{fifo}: is a FIFO (named pipe), not a regular file");
        AssertUserError(await RunBounded("align", "--model", Tabular, "--reward", "lexicon:" + fifo), $"{fifo}: is a FIFO (named pipe), not a regular file");
        Assert.Equal([fifo], Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task OutputsNeverReplaceAFifoOrADevice()
    {
        string fifo = MakeFifo("out.fifo");
        string requests = PathOf("r.jsonl");
        File.WriteAllText(requests, "{\"prompt\": \"\", \"max_tokens\": 2}\n");
        string[] model = ["--model", Tabular];
        string expected = $"{fifo}: is a FIFO (named pipe), not a regular file";
        AssertUserError(await RunBounded(["train", "value", .. model, "--reward", "length:3", "--rollouts", "4", "--out", fifo]), expected);
        AssertUserError(await RunBounded(["data", "pairs", .. model, "--reward", "length:3", "--n", "2", "--out", fifo]), expected);
        AssertUserError(await RunBounded(["align", .. model, "--requests", requests, "--out", fifo]), expected);
        AssertUserError(await RunBounded(["align", .. model, "--requests", requests, "--out", "/dev/full"]), "/dev/full: is a character device");
        Assert.Equal("FIFO (named pipe)", InputFile.NonRegularKind(fifo));
        Assert.Equal("character device", InputFile.NonRegularKind("/dev/full"));
        Assert.Equal([fifo, requests], Directory.GetFileSystemEntries(_dir).Order());
    }

    [Fact]
    public async Task BatchOutputsUnderProcAndSysAreUserErrors()
    {
        string requests = PathOf("r.jsonl");
        File.WriteAllText(requests, "{\"prompt\": \"\", \"max_tokens\": 2}\n");
        AssertUserError(await RunBounded("align", "--model", Tabular, "--requests", requests, "--out", "/proc/x"), "/proc/x: cannot write in /proc");
        AssertUserError(await RunBounded("align", "--model", Tabular, "--requests", requests, "--out", "/sys/x.out"), "/sys/x.out: cannot write in /sys");
        Assert.Equal([requests], Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task ATabularModelWithANullTransitionsRowNamesIt()
    {
        string model = PathOf("null-row.json");
        File.WriteAllText(model, """
            {"format": "tilt-tabular/1", "vocabulary": ["a", "<eos>"], "eos": "<eos>",
             "start": {"a": 1}, "transitions": {"a": null}}
            """);
        var run = await RunBounded("generate", "--model", model, "--max-tokens", "2");
        Assert.DoesNotContain("NullReference", run.Error);
        AssertUserError(run, "transitions.a is null");
    }

    [Theory]
    [InlineData("100000000")]
    [InlineData("20000")]
    public async Task HiddenUnitsBeyondWhatAHeadFileHoldsAreRefusedBeforeTheRollouts(string units)
    {
        string output = PathOf("v.head");
        var run = await RunBounded("train", "value", "--model", Tabular, "--reward", "length:3", "--head", "mlp", "--units", units, "--out", output);
        AssertUserError(run, $"--units must be 1..16384 (the most a head file holds), got {units}");
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Theory]
    [InlineData("--layers", "1000", "llama.block_count is 1000; llama.cpp loads 1..512 layers")]
    [InlineData("--vocab", "2000000000", "llama.cpp loads 1..1,048,576 here")]
    public async Task MakeModelRefusesWhatTheLoaderRefusesBeforeWriting(string option, string value, string expected)
    {
        string output = PathOf("m.gguf");
        string[] shape = ["--dim", "64", "--layers", "1", "--heads", "2", "--ff", "8", "--vocab", "300"];
        int at = Array.IndexOf(shape, option);
        shape[at + 1] = value;
        var run = await RunBounded(["make-model", .. shape, "--out", output]);
        AssertUserError(run, expected);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Theory]
    [InlineData("--methods", "", "--methods names no strategy")]
    [InlineData("--methods", " , ", "--methods names no strategy")]
    [InlineData("--base-samples", "2147483647", "--base-samples must be 2..65536, got 2147483647")]
    public async Task EvaluateLimitsAreNamedUpFront(string option, string value, string expected) =>
        AssertUserError(await RunBounded("evaluate", "--model", Tabular, "--reward", "length:3", "--out", _dir, option, value), expected);

    [Fact]
    public async Task ServeOnAPortInUseOrAForeignAddressIsAUserError()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        AssertUserError(await RunBounded("serve", "--model", Tabular, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            $"cannot listen on 127.0.0.1:{port}");
        AssertUserError(await RunBounded("serve", "--model", Tabular, "--host", "8.8.8.8", "--port", "0"), "cannot listen on 8.8.8.8:0");
    }
}
