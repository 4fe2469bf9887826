using System.Runtime.CompilerServices;
using Tilt.Engine.Rewards;

namespace Tilt.Engine.Tests.Rewards;

/// <summary>Candidates, scoring and files for the reward tests.</summary>
internal static class RewardTestData
{
    /// <summary>A candidate with <paramref name="text"/> and token ids 0..tokens-1 (the last is the stop token when finished).</summary>
    public static RewardInput Candidate(string text = "", int tokens = 0, bool finished = false, float[]? hidden = null) => new()
    {
        Prompt = "Once upon a time",
        Text = text,
        Tokens = Enumerable.Range(0, tokens).ToArray(),
        IsFinished = finished,
        FinalHidden = hidden ?? ReadOnlyMemory<float>.Empty,
    };

    /// <summary>Scores texts through the checked path, as strategies do.</summary>
    public static double[] Score(IReward reward, params string[] texts) =>
        Score(reward, texts.Select(t => Candidate(t)).ToArray());

    public static double[] Score(IReward reward, params RewardInput[] candidates)
    {
        var rewards = new double[candidates.Length];
        reward.ScoreChecked(candidates, rewards);
        return rewards;
    }

    /// <summary>src/Engine/Rewards/Lexicons in the source tree, so the built-in lists are tested where they are edited.</summary>
    public static string SourceLexiconDirectory { get; } = FindSourceLexicons();

    private static string FindSourceLexicons([CallerFilePath] string thisFile = "")
    {
        // This file's compile-time path works wherever the build output goes; the output folder's parents cover
        // builds whose source paths are mapped.
        IEnumerable<DirectoryInfo?> starts = [new FileInfo(thisFile).Directory, new DirectoryInfo(AppContext.BaseDirectory)];
        foreach (DirectoryInfo? start in starts)
        {
            for (DirectoryInfo? directory = start; directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, "Engine.sln")))
                {
                    return Path.Combine(directory.FullName, "src", "Engine", "Rewards", "Lexicons");
                }
            }
        }

        throw new InvalidOperationException($"no Engine.sln above {thisFile} or {AppContext.BaseDirectory}");
    }

    /// <summary>The message of the TiltException <paramref name="action"/> throws, checked to contain every part.</summary>
    public static string AssertTilt(Action action, params string[] parts)
    {
        var e = Assert.ThrowsAny<TiltException>(action);
        foreach (string part in parts)
        {
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
        }

        return e.Message;
    }
}

/// <summary>A fresh directory under the system temp folder, deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tilt-rewards-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>Writes a file and returns its full path.</summary>
    public string Write(string name, string content)
    {
        string file = System.IO.Path.Combine(Path, name);
        File.WriteAllText(file, content);
        return file;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
