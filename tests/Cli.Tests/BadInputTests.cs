namespace Tilt.Cli.Tests;

/// <summary>
/// Bad input found by trying the program as a hostile new user would (issue 13): every case is one line
/// "error: ..." naming the problem, exit code 2, no stack trace, and nothing left behind.
/// </summary>
public sealed class BadInputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-bad-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static void AssertUserError(CliRunner.Outcome run, string expected)
    {
        Assert.True(run.ExitCode == 2, $"exit {run.ExitCode}: {run.Error}");
        Assert.StartsWith("error: ", run.Error);
        Assert.Contains(expected, run.Error);
        Assert.DoesNotContain("   at ", run.Error);
    }

    [Theory]
    [InlineData(new[] { "generate", "--n", "1e9" }, "'1e9' for option '--n'")]
    [InlineData(new[] { "generate", "--seed", "-1" }, "'-1' for option '--seed'")]
    [InlineData(new[] { "generate", "--temperature", "inf" }, "'inf' for option '--temperature'")]
    [InlineData(new[] { "align", "--strategy" }, "--strategy")]
    [InlineData(new[] { "no-such-command" }, "no-such-command")]
    public async Task ParseErrorsExitWith2AndSayError(string[] args, string expected)
    {
        var run = await CliRunner.RunAsync(args);
        AssertUserError(run, expected);
        Assert.DoesNotContain("Description:", run.Error + run.Out);
    }

    [Fact]
    public async Task OutputPathsThatNameAFolderAreRefusedBeforeAnyWorkAndLeaveNothing()
    {
        string labels = PathOf("labels.jsonl");
        File.WriteAllLines(labels, Enumerable.Range(0, 20).Select(i => $"{{\"prompt\": \"\", \"text\": \"w{i}\", \"label\": {(i % 2 == 0 ? "true" : "false")}}}"));
        string[] model = ["--model", CliRunner.TabularExample()];

        AssertUserError(await CliRunner.RunAsync(["train", "value", .. model, "--reward", "length:3", "--out", _dir]), $"{_dir}: is a folder; give a file name");
        AssertUserError(await CliRunner.RunAsync(["train", "value", .. model, "--reward", "length:3", "--out", _dir + "/"]), "is a folder; give a file name");
        AssertUserError(await CliRunner.RunAsync(["train", "reward", .. model, "--labels", labels, "--out", _dir]), "is a folder; give a file name");
        AssertUserError(await CliRunner.RunAsync(["make-model", "--preset", "15m", "--out", _dir]), "is a folder; give a file name");
        AssertUserError(await CliRunner.RunAsync(["train", "reward", .. model, "--labels", labels, "--out", labels + "/x.head"]), $"{labels} is a file, not a folder");
        AssertUserError(await CliRunner.RunAsync(["train", "value", .. model, "--reward", "length:3", "--out", "/proc/x.head"]), "/proc/x.head: cannot write in /proc");
        Assert.Equal([labels], Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task AModelTooLargeForTheDiskIsRefusedBeforeAByteIsWritten()
    {
        string output = PathOf("huge.gguf");
        var run = await CliRunner.RunAsync("make-model", "--dim", "1000000", "--layers", "500", "--heads", "1000", "--ff", "1000", "--vocab", "300", "--out", output);
        AssertUserError(run, $"{output}: the model needs");
        Assert.Contains("GiB free", run.Error);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task CtrlCDuringAModelWriteLeavesNoFile()
    {
        using var cts = new CancellationTokenSource();
        string output = PathOf("m.gguf");
        // Cancel when the writer reports progress, i.e. while the temporary file is open and half written.
        var stderr = new CancelOnWrite("writing 5%", cts);
        int code = await Program.RunAsync(["make-model", "--preset", "15m", "--vocab", "300", "--out", output], new StringWriter(), stderr, cts.Token);
        Assert.Equal(130, code);
        Assert.Empty(Directory.GetFileSystemEntries(_dir));
    }

    [Fact]
    public async Task CtrlCDuringGeneratePrintsWhatWasDecodedAndExits130()
    {
        using var cts = new CancellationTokenSource();
        var stdout = new CancelOnWrite(" ", cts, skip: 1); // the prompt is written first; cancel on the first token
        var stderr = new StringWriter();
        int code = await Program.RunAsync(["generate", "--model", CliRunner.ModelPath, "--max-tokens", "200", "--prompt", "Once upon a time"], stdout, stderr, cts.Token);
        Assert.Equal(130, code);
        string text = stdout.ToString();
        Assert.StartsWith("Once upon a time", text);
        Assert.Matches(@"\[cancelled after [0-9]+ tokens\]", text);
        Assert.Contains("cancelled", stderr.ToString());
    }

    [Fact]
    public async Task CtrlCDuringABatchPrintsEverySampleAsFarAsItGot()
    {
        using var cts = new CancellationTokenSource();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var run = Program.RunAsync(["generate", "--model", CliRunner.ModelPath, "--n", "3", "--max-tokens", "400", "--json"], stdout, stderr, cts.Token);
        cts.CancelAfter(TimeSpan.FromMilliseconds(1));
        int code = await run;
        Assert.Equal(130, code);
        var lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.All(lines, l => Assert.Contains("\"index\"", l));
    }

    [Fact]
    public async Task APromptWithInvalidUtf8IsNamed()
    {
        var run = await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--max-tokens", "2", "--prompt", "Once \uFFFD upon");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("warning: --prompt is not valid UTF-8", run.Error);
    }

    [Fact]
    public async Task AFolderOrAJsonArrayAsTheModelIsNamedForWhatItIs()
    {
        AssertUserError(await CliRunner.RunAsync("generate", "--model", _dir), $"{_dir}: is a folder, not a model file");
        string array = PathOf("array.json");
        File.WriteAllText(array, "[1,2,3]");
        var run = await CliRunner.RunAsync("generate", "--model", array);
        AssertUserError(run, array);
        Assert.Contains("tabular model JSON", run.Error);
        Assert.DoesNotContain("GGUF", run.Error);
    }

    [Fact]
    public async Task ANativeLibraryThatIsNotLlamaIsRefusedByName()
    {
        string libc = new[] { "/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6" }.First(File.Exists);
        AssertUserError(await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--native-lib", libc), $"{libc}: is not a llama.cpp library");
        string text = PathOf("not-a-library.so");
        File.WriteAllText(text, "hello");
        AssertUserError(await CliRunner.RunAsync("generate", "--model", CliRunner.ModelPath, "--native-lib", text), $"{text}: cannot be loaded as a native library");
    }

    [Fact]
    public async Task ABinaryLexiconIsNamedWithoutRawControlBytes()
    {
        string lexicon = PathOf("bin.txt");
        File.WriteAllBytes(lexicon, [0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0, 0, 0]);
        var binary = await CliRunner.RunAsync("align", "--model", CliRunner.TabularExample(), "--reward", "lexicon:" + lexicon);
        AssertUserError(binary, $"{lexicon}:1: the lexicon file is not a text file");
        Assert.DoesNotContain(binary.Error, c => char.IsControl(c) && c is not ('\n' or '\r'));

        File.WriteAllBytes(lexicon, "good\nb\u0001ad\n"u8.ToArray());
        var control = await CliRunner.RunAsync("align", "--model", CliRunner.TabularExample(), "--reward", "lexicon:" + lexicon);
        AssertUserError(control, "b\\u0001ad");
        Assert.DoesNotContain(control.Error, c => char.IsControl(c) && c is not ('\n' or '\r'));
    }

    /// <summary>A writer that requests cancellation when a marker is written (what Ctrl+C does), after skipping some writes.</summary>
    private sealed class CancelOnWrite(string marker, CancellationTokenSource cts, int skip = 0) : StringWriter
    {
        private int _skip = skip;

        public override void Write(string? value)
        {
            base.Write(value);
            if (value is not null && value.Contains(marker, StringComparison.Ordinal) && _skip-- <= 0) cts.Cancel();
        }

        public override Task WriteAsync(string? value)
        {
            Write(value);
            return Task.CompletedTask;
        }
    }
}
