using System.Globalization;

using Tilt.Engine.Text;

namespace Tilt.Engine.Rewards;

/// <summary>
/// A weighted word list: r = sum over the words w of the continuation text of weight(w), counting every whole-word,
/// case-insensitive occurrence (words not in the list weigh 0). "Happy, happy day!" scores 2 with happy = +1.
/// Words follow one rule for the text and for the list: maximal runs of letters, digits and apostrophes, with
/// apostrophes at the ends dropped (details on <see cref="LexiconWords"/>), so "well-known" is two words and
/// "smiled" does not match "smile". Only <see cref="RewardInput.Text"/> is scored, never the prompt.
/// Specs: <c>lexicon:FILE</c>, <c>lexicon:positive</c>, <c>lexicon:negative</c>, <c>lexicon:sentiment</c>.
/// </summary>
public sealed class LexiconReward : IReward
{
    /// <summary>Built-in list of positive words, weight +1 each.</summary>
    public const string Positive = "positive";

    /// <summary>Built-in list of negative words, weight +1 each (use a negative weight, or sentiment, to penalize).</summary>
    public const string Negative = "negative";

    /// <summary>Built-in positive minus negative: positive words +1, negative words -1.</summary>
    public const string Sentiment = "sentiment";

    /// <summary>The names <c>lexicon:NAME</c> resolves without a file path.</summary>
    public static IReadOnlyList<string> BuiltInNames { get; } = [Positive, Negative, Sentiment];

    // The built-in lists are embedded in this assembly (Tilt.Engine.csproj), so a package consumer has them without any
    // folder layout next to the application.
    private const string ResourcePrefix = "Tilt.Engine.Rewards.Lexicons.";

    // Keys are normalized (lower case, straight apostrophes); the comparer still ignores case, so lookups of
    // text slices need no lower-casing copy.
    private readonly Dictionary<string, double> _weights;
    private readonly Dictionary<string, double>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    /// <summary>A lexicon from words and weights.</summary>
    /// <param name="weights">Word to weight. Each word must be one word under the rule above; weights must be finite.
    /// Two entries that differ only in case (or in ’ vs ') are a duplicate.</param>
    /// <param name="description">What <see cref="Description"/> says. Defaults to "lexicon(N words)", which is not a spec.</param>
    /// <exception cref="ArgumentException">An empty list, a bad word, a duplicate or a non-finite weight.</exception>
    public LexiconReward(IReadOnlyDictionary<string, double> weights, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var normalized = new Dictionary<string, double>(weights.Count, StringComparer.OrdinalIgnoreCase);
        foreach ((string word, double weight) in weights)
        {
            string key = LexiconWords.NormalizeEntry(word ?? "", out string problem)
                ?? throw new ArgumentException($"lexicon entry {problem}", nameof(weights));
            if (!double.IsFinite(weight))
            {
                throw new ArgumentException($"lexicon weight of '{word}' must be finite, got {weight.ToString(CultureInfo.InvariantCulture)}", nameof(weights));
            }

            if (!normalized.TryAdd(key, weight))
            {
                throw new ArgumentException($"lexicon word '{key}' appears twice (words ignore case)", nameof(weights));
            }
        }

        if (normalized.Count == 0)
        {
            throw new ArgumentException("a lexicon needs at least one word", nameof(weights));
        }

        _weights = normalized;
        _lookup = normalized.GetAlternateLookup<ReadOnlySpan<char>>();
        Description = description ?? $"lexicon({normalized.Count} words)";
    }

    /// <summary>Normalized word (lower case) to weight.</summary>
    public IReadOnlyDictionary<string, double> Weights => _weights;

    /// <summary>"lexicon:FULLPATH" for a file, "lexicon:NAME" for a built-in, or the constructor's text.</summary>
    public string Description { get; }

    public bool NeedsHiddenState => false;

    /// <summary>
    /// Loads a word list: one word per line, optionally followed by a TAB and a weight (invariant number, default
    /// 1.0); blank lines and lines whose first non-blank character is '#' are skipped. Errors name the file and line.
    /// </summary>
    /// <exception cref="TiltException">The file is missing or unreadable, or a line has an empty or invalid word,
    /// a bad weight or a duplicate word, or the file has no words.</exception>
    public static LexiconReward Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string fullPath = Path.GetFullPath(path);
        return new LexiconReward(ReadFile(fullPath), "lexicon:" + fullPath);
    }

    /// <summary>Loads <c>positive</c>, <c>negative</c> or <c>sentiment</c> (positive minus negative).</summary>
    /// <param name="name">One of <see cref="BuiltInNames"/>.</param>
    /// <param name="directory">A folder with positive.txt and negative.txt to read instead; defaults to null: the lists
    /// embedded in the engine.</param>
    /// <exception cref="ArgumentException">An unknown name.</exception>
    /// <exception cref="TiltException">A list file is missing or malformed.</exception>
    public static LexiconReward LoadBuiltIn(string name, string? directory = null)
    {
        switch (name)
        {
            case Positive or Negative:
                return new LexiconReward(ReadBuiltIn(directory, name), "lexicon:" + name);
            case Sentiment:
                var weights = new Dictionary<string, double>(ReadBuiltIn(directory, Positive), StringComparer.OrdinalIgnoreCase);
                foreach ((string word, double weight) in ReadBuiltIn(directory, Negative))
                {
                    weights[word] = weights.GetValueOrDefault(word) - weight;
                }

                return new LexiconReward(weights, "lexicon:" + Sentiment);
            default:
                throw new ArgumentException(
                    $"unknown built-in lexicon '{name}' (known: {string.Join(", ", BuiltInNames)})", nameof(name));
        }
    }

    /// <summary>The reward of one text: the sum of the weights of its words.</summary>
    public double ScoreText(ReadOnlySpan<char> text)
    {
        Span<char> scratch = stackalloc char[64];
        double sum = 0.0;
        foreach (ReadOnlySpan<char> word in LexiconWords.Enumerate(text))
        {
            if (_lookup.TryGetValue(Straighten(word, scratch), out double weight))
            {
                sum += weight;
            }
        }

        return sum;
    }

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        for (int i = 0; i < candidates.Count; i++)
        {
            rewards[i] = ScoreText(candidates[i].Text);
            if (!double.IsFinite(rewards[i]))
            {
                // Finite weights can still overflow when summed.
                throw RewardExtensions.NonFinite(this, i, rewards[i]);
            }
        }
    }

    /// <summary>The word with ’ read as ', copied only when it has one.</summary>
    private static ReadOnlySpan<char> Straighten(ReadOnlySpan<char> word, Span<char> scratch)
    {
        if (!word.Contains('\u2019'))
        {
            return word;
        }

        Span<char> copy = word.Length <= scratch.Length ? scratch[..word.Length] : new char[word.Length];
        word.Replace(copy, '\u2019', '\'');
        return copy;
    }

    private static Dictionary<string, double> ReadBuiltIn(string? folder, string name)
    {
        if (folder is null)
        {
            string resource = ResourcePrefix + name + ".txt";
            using Stream stream = typeof(LexiconReward).Assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidOperationException($"built-in lexicon '{name}' is missing: resource {resource} is not embedded in Tilt.Engine (a broken build)");
            using var reader = new StreamReader(stream);
            return Parse("lexicon:" + name, reader.ReadToEnd().ReplaceLineEndings("\n").Split('\n'));
        }

        string path = Path.GetFullPath(Path.Combine(folder, name + ".txt"));
        if (!File.Exists(path))
        {
            throw new TiltException($"built-in lexicon '{name}' is missing: {path} not found");
        }

        return ReadFile(path);
    }

    private static Dictionary<string, double> ReadFile(string path)
    {
        string[] lines = TextFile.ReadLines(path, "lexicon file");

        return Parse(path, lines);
    }

    /// <summary>The word list of <paramref name="lines"/>; errors start with <paramref name="path"/> (a file or a built-in's name).</summary>
    private static Dictionary<string, double> Parse(string path, string[] lines)
    {
        var weights = new Dictionary<string, double>(StringComparer.OrdinalIgnoreCase);
        var firstLine = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (int index = 0; index < lines.Length; index++)
        {
            string line = lines[index];
            int lineNumber = index + 1;
            string trimmed = line.Trim();
            if (trimmed.Length == 0 || trimmed[0] == '#')
            {
                continue;
            }

            int tab = line.IndexOf('\t');
            string wordPart = tab < 0 ? line : line[..tab];
            string weightPart = tab < 0 ? "" : line[(tab + 1)..].Trim();
            string word = LexiconWords.NormalizeEntry(wordPart, out string problem)
                ?? throw new TiltException($"{path}:{lineNumber}: {TextFile.Quote(problem)}{(tab < 0 && wordPart.Trim().Contains(' ') ? "; separate a weight from its word with a TAB" : "")}");

            double weight = 1.0;
            if (weightPart.Length > 0
                && !(double.TryParse(weightPart, NumberStyles.Float, CultureInfo.InvariantCulture, out weight) && double.IsFinite(weight)))
            {
                throw new TiltException($"{path}:{lineNumber}: bad weight '{TextFile.Quote(weightPart)}' for '{TextFile.Quote(word)}' (expected a finite number such as 1, -1 or 0.5)");
            }

            if (!firstLine.TryAdd(word, lineNumber))
            {
                throw new TiltException($"{path}:{lineNumber}: '{TextFile.Quote(word)}' is already on line {firstLine[word]}");
            }

            weights.Add(word, weight);
        }

        if (weights.Count == 0)
        {
            throw new TiltException($"{path}: no words (every line is blank or a comment)");
        }

        return weights;
    }
}
