using System.Text.Json;
using Tilt.Engine.Heads;
using Tilt.Engine.Models.Gguf;
using Tilt.Tests;
using static Tilt.Tests.SafetensorsWriter;

namespace Tilt.Server.Tests;

/// <summary>An <c>rm:</c> reward named in the operator's --rewards file; requests cannot name its files themselves.</summary>
public sealed class RewardModelCatalogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-serve-rm-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Bon(string reward) =>
        $$$"""{"prompt": "Once upon a time", "max_tokens": 8, "seed": 1, "alignment": {"strategy": "bon", "n": 4, "return_candidates": true, "reward": {{{JsonSerializer.Serialize(reward)}}}}}""";

    [Fact]
    public async Task A_reward_model_named_in_the_rewards_file_scores_requests()
    {
        string backbone = Path.Combine(_dir, "rm.gguf");
        SyntheticModel.Write(backbone, new ModelShape("rm", 64, 2, 2, 2, 128, 512), SentencePieceVocabulary.CopyFrom(TestPaths.DefaultModel), GgufTensorType.F32, seed: 4);
        string safetensors = Path.Combine(_dir, "score.safetensors");
        SafetensorsWriter.Write(safetensors, new Tensor("score.weight", "F32", [1, 64], RandomValues(64, 9)));
        HeadImport.FromSafetensors(new HeadImportOptions { SafetensorsPath = safetensors, Tensor = "score.weight", BackbonePath = backbone })
            .Write(Path.Combine(_dir, "rm.head"));
        string rewards = Path.Combine(_dir, "rewards.json");
        File.WriteAllText(rewards, """{"rewards": {"helpful": "rm:rm.gguf,rm.head"}}"""); // relative to the catalog's folder

        await using var host = await Host.StartAsync(Transport.InProcess, new ServerOptions { RewardsFile = rewards });
        var ok = await host.PostJsonAsync("/v1/completions", Bon("helpful"));
        var alignment = ok.GetProperty("choices")[0].GetProperty("alignment");
        Assert.Equal("helpful", alignment.GetProperty("reward_name").GetString());
        var candidates = alignment.GetProperty("candidates").EnumerateArray().Select(c => c.GetProperty("reward").GetDouble()).ToArray();
        Assert.Equal(4, candidates.Length);
        Assert.Equal(candidates.Max(), alignment.GetProperty("reward").GetDouble());
        Assert.True(candidates.Distinct().Count() > 1, "the reward model tells the candidates apart");

        // The same spec inline reads files, which requests may not make the server do.
        using var inline = await host.PostAsync("/v1/completions", Bon($"rm:{backbone},{Path.Combine(_dir, "rm.head")}"));
        string body = await inline.Content.ReadAsStringAsync();
        Assert.True((int)inline.StatusCode == 400, body);
        Assert.Contains("requests cannot make the server read files", body);
    }
}
