using Tilt.Engine.Models;
using Tilt.Engine.Models.Tabular;
using Tilt.Engine.Models.Loading;

namespace Tilt.Engine.Tests.Models;

public sealed class TabularModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-tabular-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    internal static string ExamplePath() => Tilt.Tests.TestPaths.TabularExample;

    [Fact]
    public void ExampleLoadsThroughTheGenericLoader()
    {
        using var model = LanguageModel.Load(ExamplePath());
        var tabular = Assert.IsType<TabularModel>(model);
        Assert.Equal(ModelKind.Tabular, model.Info.Kind);
        Assert.Equal(10, model.Info.VocabularySize);
        Assert.Equal(11, model.Info.HiddenSize);
        Assert.Equal(0, model.Info.EosToken);
        Assert.Null(model.Info.BosToken);
        Assert.StartsWith("sha256:", model.Info.Fingerprint);
        Assert.Equal("the", tabular.TokenText(1));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    public void EnumeratedOutputsSumToOne(int maxTokens)
    {
        var model = TabularModel.Load(ExamplePath());
        var outputs = model.EnumerateOutputs([], maxTokens);
        Assert.Equal(1.0, outputs.Sum(o => Math.Exp(o.LogProbability)), 12);
        Assert.All(outputs, o => Assert.True(o.EndsWithEos || o.Tokens.Length == maxTokens));
        Assert.All(outputs, o => Assert.Equal(o.LogProbability, model.SequenceLogProbability([], o.Tokens), 12));
    }

    [Fact]
    public void ExactProbabilityOfAHandComputedSequence()
    {
        var model = TabularModel.Load(ExamplePath());
        // the(1.0) cat(0.5) was(0.6) happy(0.3) <eos>(0.7)
        int[] y = model.Tokenize("the cat was happy <eos>");
        Assert.Equal(Math.Log(1.0 * 0.5 * 0.6 * 0.3 * 0.7), model.SequenceLogProbability([], y), 14);
        // After the prompt "the dog", the next token is drawn from dog's row.
        Assert.Equal(Math.Log(0.5), model.SequenceLogProbability(model.Tokenize("the dog"), model.Tokenize("ran")), 14);
    }

    [Fact]
    public void SessionLogitsAreLogProbabilitiesAndHiddenIsOneHot()
    {
        var model = TabularModel.Load(ExamplePath());
        using var session = model.CreateSession(new SessionOptions { MaxSequences = 2, MaxSequenceLength = 8 });
        session.Prefill(0, model.Tokenize("the"));
        session.CopySequence(0, 1);
        int cat = model.Tokenize("cat")[0], dog = model.Tokenize("dog")[0], was = model.Tokenize("was")[0];
        session.Step([0, 1], [cat, dog]);
        Assert.Equal((float)Math.Log(0.6), session.Logits[was], 6);
        Assert.Equal((float)Math.Log(0.5), session.Logits[10 + was], 6);
        Assert.Equal(float.NegativeInfinity, session.Logits[0]); // cat -> <eos> is impossible
        Assert.Equal(1f, session.Hidden[cat]);
        Assert.Equal(1f, session.Hidden[11 + dog]);
        Assert.Equal(1f, session.Hidden.ToArray().Sum() / 2);
        Assert.Equal(2, session.Length(0));
    }

    [Fact]
    public void StreamingDetokenizationEqualsWholeDetokenization()
    {
        var model = TabularModel.Load(ExamplePath());
        int[] tokens = model.Tokenize("the cat ran home <eos>");
        var decoder = model.CreateTextDecoder();
        string streamed = string.Concat(tokens.Select(decoder.Push)) + decoder.Flush();
        Assert.Equal("the cat ran home", streamed);
        Assert.Equal(model.Detokenize(tokens), streamed);
    }

    [Theory]
    [InlineData("\"the\": 1.0", "\"the\": 0.9", "start: probabilities sum to 0.9")]
    [InlineData("\"home\":  { \"<eos>\": 1.0 }", "\"home\":  { \"<eos>\": 1.0, \"cow\": 0.0 }", "transitions.home: unknown token 'cow'")]
    [InlineData("\"home\":  { \"<eos>\": 1.0 }", "\"home\":  { \"<eos>\": 1.5, \"the\": -0.5 }", "not in [0, 1]")]
    [InlineData(",\n    \"home\":  { \"<eos>\": 1.0 }", "", "transitions.home is missing")]
    [InlineData("\"eos\": \"<eos>\"", "\"eos\": \"<end>\"", "eos '<end>' is not in the vocabulary")]
    [InlineData("\"format\": \"tilt-tabular/1\"", "\"format\": \"tilt-tabular/2\"", "expected 'tilt-tabular/1'")]
    [InlineData("\"start\"", "\"begin\"", "invalid tabular model JSON")]
    [InlineData("\"ran\", \"home\"]", "\"ran\", \"ran\"]", "appears twice")]
    [InlineData("\"the\":   { \"cat\": 0.5, \"dog\": 0.5 }", "\"the\":   { \"cat\": NaN }", "invalid tabular model JSON")]
    public void BadFilesGiveAnErrorNamingTheProblem(string find, string replace, string expected)
    {
        string json = File.ReadAllText(ExamplePath());
        Assert.Contains(find, json);
        string path = Path.Combine(_dir, "bad.json");
        File.WriteAllText(path, json.Replace(find, replace));
        var e = Assert.Throws<ModelLoadException>(() => LanguageModel.Load(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void UnknownPromptWordIsARequestError()
    {
        var model = TabularModel.Load(ExamplePath());
        var e = Assert.Throws<RequestException>(() => model.Tokenize("the cow"));
        Assert.Contains("'cow'", e.Message);
    }
}
