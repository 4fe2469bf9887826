using System.Text.Json;
using Tilt.Engine.Rewards;
using Tilt.Engine.Models.Loading;

namespace Tilt.Server.Tests;

public sealed class SecurityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-serve-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Bon(string reward) => $$$"""{"prompt": "Once upon a time", "max_tokens": 12, "seed": 1, "alignment": {"strategy": "bon", "n": 4, "reward": {{{JsonSerializer.Serialize(reward)}}}}}""";

    [Fact]
    public async Task Allow_files_admits_files_inside_the_directory_only_after_resolving_links()
    {
        string allowed = Directory.CreateDirectory(Path.Combine(_dir, "allowed")).FullName;
        File.WriteAllText(Path.Combine(allowed, "words.txt"), "girl\nhappy\n");
        File.WriteAllText(Path.Combine(_dir, "outside.txt"), "girl\n");
        File.CreateSymbolicLink(Path.Combine(allowed, "escape.txt"), Path.Combine(_dir, "outside.txt"));
        Directory.CreateSymbolicLink(Path.Combine(allowed, "up"), _dir);
        await using var host = await Host.StartAsync(Transport.InProcess, new ServerOptions { AllowFilesDirectory = allowed });

        var ok = await host.PostJsonAsync("/v1/completions", Bon("lexicon:words.txt"));
        Assert.Equal("lexicon:words.txt", ok.GetProperty("choices")[0].GetProperty("alignment").GetProperty("reward_name").GetString());
        await host.PostJsonAsync("/v1/completions", Bon($"lexicon:{Path.Combine(allowed, "words.txt")}"));
        foreach (var spec in new[] { "lexicon:../outside.txt", "lexicon:escape.txt", "lexicon:up/outside.txt", "lexicon:/etc/passwd", "head:../../x", "lexicon:missing.txt" })
        {
            using var r = await host.PostAsync("/v1/completions", Bon(spec));
            string body = await r.Content.ReadAsStringAsync();
            Assert.True((int)r.StatusCode == 400, $"{spec}: {(int)r.StatusCode} {body}");
            Assert.Equal("alignment.reward", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("param").GetString());
        }
    }

    /// <summary>Issue 25: a FIFO inside --allow-files used to hang the request (and the server's exit) until a writer came.</summary>
    [Fact]
    public async Task A_fifo_inside_the_allowed_directory_is_refused_without_being_opened()
    {
        string fifo = Path.Combine(_dir, "words.fifo");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
        {
            mkfifo.WaitForExit();
            Assert.Equal(0, mkfifo.ExitCode);
        }
        await using var host = await Host.StartAsync(Transport.InProcess, new ServerOptions { AllowFilesDirectory = _dir });
        // Bounded so that a regression fails instead of hanging the suite.
        using var r = await host.PostAsync("/v1/completions", Bon("lexicon:words.fifo")).WaitAsync(TimeSpan.FromSeconds(60));
        string body = await r.Content.ReadAsStringAsync();
        Assert.True((int)r.StatusCode == 400, $"{(int)r.StatusCode} {body}");
        Assert.Contains("is a FIFO (named pipe), not a regular file", body);
        Assert.Equal("alignment.reward", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Rewards_file_names_rewards_the_operator_trusts()
    {
        File.WriteAllText(Path.Combine(_dir, "story.txt"), "girl\t2\nhappy\n");
        string rewards = Path.Combine(_dir, "rewards.json");
        File.WriteAllText(rewards, """{"rewards": {"story": "lexicon:story.txt", "short": "length:8"}}""");
        await using var host = await Host.StartAsync(Transport.InProcess, new ServerOptions { RewardsFile = rewards });
        var ok = await host.PostJsonAsync("/v1/completions", Bon("story"));
        Assert.Equal("story", ok.GetProperty("choices")[0].GetProperty("alignment").GetProperty("reward_name").GetString());
        // The file itself cannot be named by a request, only its name.
        using var r = await host.PostAsync("/v1/completions", Bon($"lexicon:{Path.Combine(_dir, "story.txt")}"));
        Assert.Equal(400, (int)r.StatusCode);
        using var head = await host.PostAsync("/v1/completions",
            """{"prompt": "x", "max_tokens": 4, "alignment": {"strategy": "blockwise", "value_head": "nope"}}""");
        Assert.Contains("unknown value head", await head.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Value_heads_are_named_in_the_rewards_file_or_allowed_by_directory()
    {
        string fingerprint;
        int hidden;
        using (var lm = Tilt.Engine.Models.Loading.LanguageModel.Load(Tilt.Tests.TestPaths.DefaultModel))
            (fingerprint, hidden) = (lm.Info.Fingerprint, lm.Info.HiddenSize);
        // A linear value head on the model's hidden states (weights arbitrary but fixed: the test is about naming, not quality).
        var weights = Enumerable.Range(0, hidden + 1).Select(i => (float)Math.Sin(i)).ToArray();
        new Engine.Heads.HeadFile(new Engine.Heads.HeadHeader { Kind = Engine.Heads.HeadKind.Linear, Role = Engine.Heads.HeadRole.Value, ModelFingerprint = fingerprint, HiddenSize = hidden }, weights)
            .Write(Path.Combine(_dir, "v.head"));
        string rewards = Path.Combine(_dir, "rewards.json");
        File.WriteAllText(rewards, """{"value_heads": {"story-value": "v.head"}}""");
        const string Request = """{"prompt": "Once upon a time", "max_tokens": 8, "seed": 1, "alignment": {"strategy": "blockwise", "k": 4, "block": 4, "value_head": "HEAD"}}""";

        await using (var host = await Host.StartAsync(Transport.InProcess, new ServerOptions { RewardsFile = rewards }))
        {
            var ok = await host.PostJsonAsync("/v1/completions", Request.Replace("HEAD", "story-value"));
            Assert.Equal("blockwise", ok.GetProperty("choices")[0].GetProperty("alignment").GetProperty("strategy").GetString());
            using var byPath = await host.PostAsync("/v1/completions", Request.Replace("HEAD", "v.head"));
            Assert.Equal(400, (int)byPath.StatusCode);
        }
        await using (var host = await Host.StartAsync(Transport.InProcess, new ServerOptions { AllowFilesDirectory = _dir }))
        {
            await host.PostJsonAsync("/v1/completions", Request.Replace("HEAD", "v.head"));
            using var outside = await host.PostAsync("/v1/completions", Request.Replace("HEAD", "../v.head"));
            Assert.Equal(400, (int)outside.StatusCode);
        }
    }

    [Fact]
    public void A_broken_rewards_file_is_refused_at_start()
    {
        string rewards = Path.Combine(_dir, "bad.json");
        File.WriteAllText(rewards, """{"rewards": {"x": "lexicon:nope.txt"}}""");
        using var model = Tilt.Engine.Models.Loading.LanguageModel.Load(Tilt.Tests.TestPaths.DefaultModel);
        var e = Assert.ThrowsAny<Engine.TiltException>(() => new RewardCatalog(rewards, new FileSandbox(null), new RequestLimits(), model.Info));
        Assert.Contains("nope.txt", e.Message);
    }

    [Fact]
    public void Request_regexes_run_with_the_server_timeout()
    {
        using var model = Tilt.Engine.Models.Loading.LanguageModel.Load(Tilt.Tests.TestPaths.DefaultModel);
        var catalog = new RewardCatalog(null, new FileSandbox(null), new RequestLimits { RegexMatchTimeout = TimeSpan.FromMilliseconds(50) }, model.Info);
        var regex = Assert.IsType<RegexReward>(catalog.Reward("regex:(a+)+b"));
        Assert.Equal(TimeSpan.FromMilliseconds(50), regex.MatchTimeout);
        // A catastrophic pattern on hostile text fails with a named error instead of holding a core.
        var scores = new double[1];
        var e = Assert.Throws<Engine.TiltException>(() => regex.Score([new RewardInput { Prompt = "", Text = new string('a', 40) + "!", Tokens = [], IsFinished = true }], scores));
        Assert.Contains("timed out", e.Message);
        var tooLong = Assert.Throws<ApiException>(() => catalog.Reward("regex:" + new string('a', 600)));
        Assert.Equal("alignment.reward", tooLong.Param);
    }

    [Fact]
    public async Task A_catastrophic_regex_from_a_request_times_out_as_a_400()
    {
        await using var host = await Host.StartAsync(Transport.InProcess);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // Nested quantifiers that never match ('#' is not in stories): exponential backtracking in the text's length.
        string body = """{"prompt": "Once upon a time", "max_tokens": 48, "seed": 1, "alignment": {"strategy": "bon", "n": 2, "reward": "regex:(\\w+\\s?)+#"}}""";
        using var r = await host.PostAsync("/v1/completions", body);
        string text = await r.Content.ReadAsStringAsync();
        Assert.True((int)r.StatusCode == 400, text);
        Assert.Contains("timed out", text);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public void The_api_key_check_is_exact()
    {
        var hash = System.Security.Cryptography.SHA256.HashData("k3y"u8);
        Assert.True(ApiKeyCheck.Matches("Bearer k3y", hash));
        Assert.False(ApiKeyCheck.Matches("Bearer k3", hash));
        Assert.False(ApiKeyCheck.Matches("Bearer k3yy", hash));
        Assert.False(ApiKeyCheck.Matches("k3y", hash));
        Assert.False(ApiKeyCheck.Matches(null, hash));
        Assert.False(ApiKeyCheck.Matches("Bearer ", System.Security.Cryptography.SHA256.HashData(""u8)));
    }
}
