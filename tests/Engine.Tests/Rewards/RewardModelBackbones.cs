using Tilt.Engine.Heads;
using Tilt.Engine.Models.Gguf;
using Tilt.Tests;
using static Tilt.Tests.SafetensorsWriter;

namespace Tilt.Engine.Tests.Rewards;

/// <summary>
/// Small random-weight llama backbones for <c>rm:</c> tests, written once per test run (as <c>tilt make-model</c>
/// writes them) with stories260K's vocabulary so English text tokenizes into few tokens: one of width 64 without a
/// chat template, one of width 64 with chatml, and one of width 48 for hidden-size mismatches.
/// </summary>
public sealed class RewardModelBackbones : IDisposable
{
    public const int Hidden = 64;
    public const int OtherHidden = 48;

    public RewardModelBackbones()
    {
        Folder = Directory.CreateTempSubdirectory("tilt-rm-").FullName;
        var vocabulary = SentencePieceVocabulary.CopyFrom(TestPaths.DefaultModel);
        Plain = Write("plain.gguf", new ModelShape("rm", Hidden, 2, 2, 2, 128, 512), vocabulary, seed: 7, template: null);
        Chat = Write("chat.gguf", new ModelShape("rm", Hidden, 2, 2, 2, 128, 512), vocabulary, seed: 8, template: "chatml");
        Narrow = Write("narrow.gguf", new ModelShape("rm", OtherHidden, 2, 2, 2, 96, 512), vocabulary, seed: 9, template: null);
        HeadWeights = RandomValues(Hidden, 21);
        Bias = 0.25f;
        string safetensors = Path.Combine(Folder, "score.safetensors");
        SafetensorsWriter.Write(safetensors,
            new Tensor("score.weight", "F32", [1, Hidden], HeadWeights),
            new Tensor("score.bias", "F32", [1], [Bias]));
        PlainHead = Import(safetensors, Plain, "plain.head");
        ChatHead = Import(safetensors, Chat, "chat.head");
    }

    public string Folder { get; }

    public string Plain { get; }
    public string Chat { get; }
    public string Narrow { get; }

    /// <summary>w of the head written to score.safetensors (and imported for both 64-wide backbones).</summary>
    public float[] HeadWeights { get; }

    public float Bias { get; }

    public string PlainHead { get; }
    public string ChatHead { get; }

    public void Dispose() => Directory.Delete(Folder, recursive: true);

    private string Write(string name, ModelShape shape, SentencePieceVocabulary vocabulary, ulong seed, string? template)
    {
        string path = Path.Combine(Folder, name);
        SyntheticModel.Write(path, shape, vocabulary, GgufTensorType.F32, seed, chatTemplate: template);
        return path;
    }

    private string Import(string safetensors, string backbone, string name)
    {
        string path = Path.Combine(Folder, name);
        HeadImport.FromSafetensors(new HeadImportOptions
        {
            SafetensorsPath = safetensors,
            Tensor = "score.weight",
            BiasTensor = "score.bias",
            BackbonePath = backbone,
        }).Write(path);
        return path;
    }
}

[CollectionDefinition(Name)]
public sealed class RewardModelCollection : ICollectionFixture<RewardModelBackbones>, ICollectionFixture<SharedModel>
{
    public const string Name = "reward-model backbones";
}
