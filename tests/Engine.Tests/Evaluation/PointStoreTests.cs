using Tilt.Engine.Evaluation;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Tests.Evaluation;

/// <summary>An evaluation folder resumes only under the settings it was made with (issue 13, item 1).</summary>
public sealed class PointStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-points-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static EvaluationIdentity Identity(string reward = "lexicon:sentiment", ulong seed = 0, int maxTokens = 32, string value = "prefix(lexicon:sentiment)", string model = "sha256:aa") => new()
    {
        Model = model, Reward = reward, Value = value, Prompts = "p", PromptCount = 2, OutputsPerPrompt = 4, BaseSamplesPerPrompt = 64, MaxTokens = maxTokens, Seed = seed,
    };

    private static EvaluatedPoint Point(string id) => new()
    {
        Id = id, Series = "best-of-n", Method = EvaluationMethod.BestOfN, N = 4, Prompts = 1, Outputs = 1, WinRate = 0.5, WinRateLower = 0.4, WinRateUpper = 0.6,
        Kl = 0.1, KlStandardError = 0, KlMethod = "m", MeanReward = 0, BaseMeanReward = 0, TokensEvaluatedPerOutputToken = 1, LatencyMsPerOutput = 1, FirstTextMs = 1, Seconds = 1,
    };

    public static TheoryData<EvaluationIdentity, string> Changes => new()
    {
        { Identity(reward: "length:20"), "--reward: 'lexicon:sentiment' in the folder, 'length:20' in this run" },
        { Identity(seed: 7), "--seed: '0' in the folder, '7' in this run" },
        { Identity(maxTokens: 48), "--max-tokens: '32' in the folder, '48' in this run" },
        { Identity(value: "head:v.head@sha256:12"), "value (--value-head/--value)" },
        { Identity(model: "sha256:bb"), "model fingerprint: 'sha256:aa' in the folder, 'sha256:bb' in this run" },
    };

    [Theory]
    [MemberData(nameof(Changes))]
    public void OtherSettingsAreRefusedNamingTheSettingAndForceStartsAfresh(EvaluationIdentity other, string expected)
    {
        PointStore.Open(_dir, Identity()).Add(Point("bon-n4"));
        var e = Assert.Throws<TiltException>(() => PointStore.Open(_dir, other));
        Assert.Contains(expected, e.Message);
        Assert.Single(PointStore.Open(_dir, Identity()).Points);

        Assert.Empty(PointStore.Open(_dir, other, startAfresh: true).Points);
        Assert.Empty(PointStore.Open(_dir, other).Points);
        Assert.Throws<TiltException>(() => PointStore.Open(_dir, Identity()));
    }

    [Fact]
    public void PointsSavedWithTheOldKlMethodSpellingResumeInTheOneSpellingEveryFrontEndUses()
    {
        PointStore.Open(_dir, Identity()).Add(Point("bon-n4") with { KlMethod = "BestOfNEstimate" });
        var reopened = PointStore.Open(_dir, Identity()).Points.Single();
        Assert.Equal("best_of_n_estimate", reopened.KlMethod);
        Assert.Equal("step_drift_sum", EvaluatedPoint.MethodName(KlMethod.StepDriftSum));
        Assert.Equal("soft_best_of_n_estimate", EvaluatedPoint.MethodName(KlMethod.SoftBestOfNEstimate));
    }

    [Fact]
    public void PointsWithoutASettingsFileAreNotReusedSilently()
    {
        File.WriteAllText(Path.Combine(_dir, PointStore.JsonFile), "[]");
        Assert.Contains("has no settings.json", Assert.Throws<TiltException>(() => PointStore.Open(_dir, Identity())).Message);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("[null]")]
    [InlineData("[{\"id\": \"\"}]")]
    [InlineData("{")]
    public void ACorruptPointsFileIsAnErrorAndIsNotOverwritten(string content)
    {
        PointStore.Open(_dir, Identity());
        string points = Path.Combine(_dir, PointStore.JsonFile);
        File.WriteAllText(points, content);
        Assert.Contains("corrupt points file", Assert.Throws<TiltException>(() => PointStore.Open(_dir, Identity())).Message);
        Assert.Equal(content, File.ReadAllText(points));
    }
}
