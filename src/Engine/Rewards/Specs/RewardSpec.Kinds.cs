using System.Globalization;
using Tilt.Engine.Rewards.Llama;
using Tilt.Engine.Rewards.Neural;

namespace Tilt.Engine.Rewards.Specs;

public static partial class RewardSpec
{
    /// <summary>The parser's leaves: one reward per kind, with paths resolved against the spec's context.</summary>
    private sealed partial class Parser
    {
        private IReward CreateKind(string kind, string argument)
        {
            try
            {
                switch (kind)
                {
                    case "length":
                        if (!int.TryParse(argument, NumberStyles.None, CultureInfo.InvariantCulture, out int target) || target < 1)
                        {
                            throw Error($"bad length target '{argument}' in 'length:{argument}' (a whole number of tokens >= 1){PlusHint(argument)}");
                        }

                        return new LengthReward(target);
                    case "lexicon":
                        if (LexiconReward.BuiltInNames.Contains(argument))
                        {
                            return LexiconReward.LoadBuiltIn(argument, _context.LexiconDirectory);
                        }

                        // A misspelt built-in name (lexicon:happy) would otherwise read as a missing file only.
                        string lexiconPath = ResolvePath(argument);
                        if (!File.Exists(lexiconPath))
                        {
                            throw Error($"{lexiconPath}: lexicon file not found, and '{argument}' is not a built-in lexicon " +
                                $"(built-in: {string.Join(", ", LexiconReward.BuiltInNames.Select(n => "lexicon:" + n))}){PlusHint(argument)}");
                        }

                        return LexiconReward.Load(lexiconPath);
                    case "regex":
                        return new RegexReward(argument, _context.RegexMatchTimeout ?? RegexReward.DefaultMatchTimeout);
                    case "onnx":
                        var (classifier, classifierOptions) = NeuralRewardOptions.Parse(argument, classifier: true, ResolvePath);
                        return OnnxClassifierReward.Create(classifier, classifierOptions);
                    case "similarity":
                        return CreateSimilarity(argument);
                    case "dpo":
                        return new DpoReward(DpoModels.Parse(argument, ResolvePath));
                    case "rm":
                        return RewardModelReward.Parse(argument, ResolvePath);
                    default: // head
                        Func<string, IReward> factory = _context.HeadRewardFactory
                            ?? throw Error($"'head:{argument}' needs a loaded model: trained reward heads read the model's hidden states, and no model was given");
                        string path = ResolvePath(argument);
                        return factory(path) ?? throw new InvalidOperationException($"the head reward factory returned null for {path}");
                }
            }
            catch (TiltException e) when (!e.Message.StartsWith(Prefix, StringComparison.Ordinal))
            {
                throw new TiltException($"{Prefix}{e.Message}{PlusHint(argument)}", e);
            }
        }

        /// <summary>similarity:MODEL[,OPTIONS]|TARGET: the first '|' ends the model part; the target is unescaped.</summary>
        private SimilarityReward CreateSimilarity(string argument)
        {
            int bar = argument.IndexOf('|');
            if (bar < 0)
            {
                throw Error($"'similarity:{argument}' has no target text: write similarity:MODEL.onnx|TARGET TEXT");
            }

            string target = SimilarityReward.UnescapeText(argument[(bar + 1)..]).Trim();
            if (target.Length == 0)
            {
                throw Error($"empty target text after '|' in 'similarity:{argument}' (write similarity:MODEL.onnx|TARGET TEXT)");
            }

            var (model, options) = NeuralRewardOptions.Parse(argument[..bar], classifier: false, ResolvePath);
            return SimilarityReward.Create(model, target, options);
        }

        private string ResolvePath(string path)
        {
            string baseDirectory = Path.GetFullPath(_context.BaseDirectory ?? Directory.GetCurrentDirectory());
            string full = Path.GetFullPath(path, baseDirectory);
            return _context.FilePolicy is { } policy ? policy(full) : full;
        }
    }
}
