namespace Tilt.Cli.Tests;

/// <summary>
/// tilt serve's --model [NAME=]FILE and --alias NAME=MODEL: a malformed, empty or repeated name, or an alias of no model,
/// is refused before anything loads or listens, with exit code 2 and one line naming the option and the value.
/// </summary>
public sealed class ServeModelOptionsTests
{
    private static string Model => CliRunner.ModelPath;

    public static TheoryData<string[], string> BadNames => new()
    {
        { ["--model", "=" + Model], $"--model '={Model}': the name before '=' is empty (expected NAME=FILE)" },
        { ["--model", "stories="], "--model 'stories=': the file after '=' is empty (expected NAME=FILE)" },
        { ["--model", ""], "--model is empty" },
        { ["--model", "a=" + Model, "--model", "A=" + Model], $"--model 'A={Model}': the name 'A' is already taken by --model 'a={Model}'" },
        // Two bare files with one file name would both be named by it.
        { ["--model", Model, "--model", "tales=" + Model, "--model", "./" + Path.GetFileName(Model)], "the name 'stories260K' is already taken" },
        { ["--model", "a=" + Model, "--alias", "b"], "--alias 'b': expected NAME=MODEL" },
        { ["--model", "a=" + Model, "--alias", "=a"], "--alias '=a': the alias before '=' is empty (expected NAME=MODEL)" },
        { ["--model", "a=" + Model, "--alias", "b="], "--alias 'b=': the model after '=' is empty (expected NAME=MODEL)" },
        { ["--model", "a=" + Model, "--alias", "b=nope"], "--alias 'b=nope': there is no model named 'nope' (models: a)" },
        { ["--model", "a=" + Model, "--model", "c=" + Model, "--alias", "c=a"], "--alias 'c=a': 'c' is already the name of a model" },
        { ["--model", "a=" + Model, "--model", "c=" + Model, "--alias", "b=a", "--alias", "B=c"], "--alias 'B=c': 'B' is already an alias of 'a'" },
    };

    [Theory]
    [MemberData(nameof(BadNames))]
    public async Task Bad_model_and_alias_names_are_user_errors(string[] args, string expected)
    {
        // Port 1 would need privileges: the refusal must come before the server tries to listen.
        var run = await CliRunner.RunAsync(["serve", "--port", "1", .. args]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains(expected, run.Error);
        Assert.StartsWith("error: ", run.Error);
        Assert.DoesNotContain("listening", run.Out);
    }

    [Fact]
    public async Task A_missing_file_under_a_name_is_named_by_the_model_setting()
    {
        var run = await CliRunner.RunAsync("serve", "--port", "0", "--model", "tales=/nonexistent/tales.gguf");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("Tilt:Models:tales:Path: /nonexistent/tales.gguf not found", run.Error);
    }
}
