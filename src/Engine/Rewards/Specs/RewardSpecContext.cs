namespace Tilt.Engine.Rewards.Specs;

/// <summary>What <see cref="RewardSpec.Parse"/> needs beyond the spec text.</summary>
public sealed class RewardSpecContext
{
    /// <summary>A context with every default: paths against the current directory, no model for <c>head:</c>.</summary>
    public static RewardSpecContext Default { get; } = new();

    /// <summary>
    /// The directory relative file paths (<c>lexicon:FILE</c>, <c>head:FILE</c>) resolve against. Defaults to null:
    /// the current directory at the time of parsing.
    /// </summary>
    public string? BaseDirectory { get; init; }

    /// <summary>
    /// Creates the reward of <c>head:FILE</c> from the file's full path; supplied by whoever holds the model the head
    /// reads hidden states of. Defaults to null: <c>head:</c> is an error saying a model is needed.
    /// </summary>
    public Func<string, IReward>? HeadRewardFactory { get; init; }

    /// <summary>
    /// A folder to read <c>lexicon:positive</c>, <c>negative</c> and <c>sentiment</c> from (positive.txt, negative.txt).
    /// Defaults to null: the lists embedded in the engine.
    /// </summary>
    public string? LexiconDirectory { get; init; }

    /// <summary>
    /// Decides whether a file a spec names (<c>lexicon:FILE</c>, <c>head:FILE</c>) may be read: called with its full
    /// path before anything is opened, it returns the path to read or throws <see cref="TiltException"/> saying why
    /// not. Servers set it, since their specs come from the network. Defaults to null: any file may be read.
    /// </summary>
    public Func<string, string>? FilePolicy { get; init; }

    /// <summary>
    /// How long one <c>regex:</c> count may run per candidate. Defaults to null:
    /// <see cref="RegexReward.DefaultMatchTimeout"/>.
    /// </summary>
    public TimeSpan? RegexMatchTimeout { get; init; }
}
