using Tilt.Engine.Models;
using Tilt.Engine.Models.Loading;

namespace Tilt.Cli.Tests;

public sealed class MakeModelCommandTests
{
    [Fact]
    public async Task Chat_template_options_write_tokenizer_chat_template()
    {
        string dir = Directory.CreateTempSubdirectory("tilt-make-").FullName;
        try
        {
            string named = Path.Combine(dir, "named.gguf");
            var run = await CliRunner.RunAsync("make-model", "--dim", "64", "--layers", "1", "--heads", "2", "--ff", "128",
                "--vocab-from", CliRunner.ModelPath, "--type", "f32", "--chat-template", "chatml", "--out", named);
            Assert.True(run.ExitCode == 0, run.Error);
            using (var model = LanguageModel.Load(named)) Assert.Equal("chatml", model.Info.ChatTemplate);

            string jinja = Path.Combine(dir, "template.jinja");
            File.WriteAllText(jinja, "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}");
            string fromFile = Path.Combine(dir, "file.gguf");
            run = await CliRunner.RunAsync("make-model", "--dim", "64", "--layers", "1", "--heads", "2", "--ff", "128",
                "--vocab-from", CliRunner.ModelPath, "--type", "f32", "--chat-template-file", jinja, "--out", fromFile);
            Assert.True(run.ExitCode == 0, run.Error);
            using (var model = LanguageModel.Load(fromFile)) Assert.Equal(File.ReadAllText(jinja), model.Info.ChatTemplate);

            run = await CliRunner.RunAsync("make-model", "--dim", "64", "--layers", "1", "--heads", "2", "--ff", "128", "--vocab", "300",
                "--chat-template-file", Path.Combine(dir, "missing.jinja"), "--out", Path.Combine(dir, "x.gguf"));
            Assert.Equal(2, run.ExitCode);
            Assert.Contains("missing.jinja", run.Error);
            Assert.False(File.Exists(Path.Combine(dir, "x.gguf")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Serve_refuses_bad_options_with_exit_code_2()
    {
        var run = await CliRunner.RunAsync("serve", "--host", "example.com", "--port", "0");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--host", run.Error);
        run = await CliRunner.RunAsync("serve", "--port", "70000");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("port", run.Error);
        run = await CliRunner.RunAsync("serve", "--port", "0", "--model", "/nonexistent/model.gguf");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("/nonexistent/model.gguf", run.Error);
    }
}
