using System.Globalization;
using System.Text.RegularExpressions;
using Tilt.Engine.Rewards.Llama;
using Tilt.Engine.Rewards.Neural;

namespace Tilt.Engine.Rewards.Specs;

/// <summary>
/// Parses reward specs such as <c>0.7*lexicon:positive+0.3*length:40</c> or <c>meanstd(1;head:a.head;head:b.head)</c>
/// into an <see cref="IReward"/>. The grammar is in <see cref="Describe"/>. The <see cref="IReward.Description"/> of a
/// parsed reward is canonical (no spaces, weights of 1 left out, file paths made absolute) and parses back to an
/// equivalent reward.
/// </summary>
public static partial class RewardSpec
{
    /// <summary>Ensembles nest at most this deep.</summary>
    public const int MaxNesting = 16;

    /// <summary>Reward kinds, written <c>KIND:ARGUMENT</c>.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["length", "lexicon", "regex", "head", "onnx", "similarity", "dpo", "rm"];

    /// <summary>
    /// Ensemble names, written <c>NAME(A;B;...)</c>, and <c>calibrated(A)</c>, which takes one member: it is parsed
    /// like an ensemble so that it nests and weighs the same way.
    /// </summary>
    public static IReadOnlyList<string> EnsembleNames { get; } = ["mean", "min", "meanstd", "calibrated"];

    /// <summary>Parses a spec.</summary>
    /// <param name="spec">The spec text.</param>
    /// <param name="context">Base directory, head factory and lexicon directory; defaults to <see cref="RewardSpecContext.Default"/>.</param>
    /// <exception cref="TiltException">Any problem with the spec (empty spec, unknown kind, missing argument, bad
    /// weight, unbalanced parentheses, a file that cannot be loaded); the message quotes the spec and the offending part.</exception>
    public static IReward Parse(string spec, RewardSpecContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new Parser(spec, context ?? RewardSpecContext.Default).ParseSpec();
    }

    /// <summary>Help text for the grammar (the CLI prints it in --help).</summary>
    public static string Describe() =>
        """
        Reward specs:
          KIND:ARG                a reward, e.g. length:40
          W*KIND:ARG              a weighted reward; W may be negative, e.g. -0.5*length:10
          A+B+...                 weighted sum of terms [M22], e.g. 0.7*lexicon:positive+0.3*length:40
          mean(A;B;...)           mean of sums A, B, ... (ensemble [M21])
          min(A;B;...)            minimum of A, B, ... (pessimistic ensemble)
          meanstd(L;A;B;...)      mean - L * std of A, B, ... (population std, L >= 0)
          calibrated(A)           A's quantile among the candidates scored in the same call for the same prompt [M28]:
                                  (#lower + 0.5 * #equal) / n, in (0, 1); 0.5 for a lone candidate. Puts rewards of
                                  different scales on one scale, e.g. mean(calibrated(A);calibrated(B))
          Ensembles may be weighted terms of a sum and may nest (up to 16 levels).
        Kinds:
          length:N                -|n - N| / N, n = continuation tokens without the stop token
          lexicon:FILE            sum of word weights over whole-word, case-insensitive matches in the text;
                                  FILE has one WORD[<TAB>WEIGHT] per line (weight 1 by default), '#' comments
          lexicon:positive        built-in list of happy words of children's stories (+1 each)
          lexicon:negative        built-in list of sad, scared and angry words (+1 each)
          lexicon:sentiment       positive minus negative (+1 / -1)
          regex:PATTERN           number of non-overlapping matches of a .NET regex (case-sensitive; (?i) ignores case)
          head:FILE               a trained reward head (needs a loaded model)
          onnx:MODEL.onnx[,OPTIONS]
                                  logit of a sequence classifier (ONNX Runtime; label=I picks the logit, default 0;
                                  input=prompt+response (default) or input=response)
          similarity:MODEL.onnx[,OPTIONS]|TARGET
                                  cosine between the response's sentence embedding (mean over tokens, L2-normalised)
                                  and TARGET's; in TARGET write \+ \; \( \) \\ for + ; ( ) \
          dpo:POLICY,REF[,beta=B] DPO's implicit reward beta * (log pi_policy(y|x) - log pi_ref(y|x)) [M23] of two
                                  models (GGUF or tabular) that share a vocabulary; beta defaults to 0.1
          rm:BACKBONE.gguf,HEAD[,template=NAME]
                                  an LLM reward model: prompt and response in the backbone's chat template (or NAME,
                                  or none), head . final hidden state of the last token (tilt head import makes HEAD);
                                  HEAD may be a .safetensors file, with tensor=NAME (default score.weight),
                                  bias-tensor=NAME and label=N
          OPTIONS of onnx: and similarity: are comma-separated: max-length=N (tokens, default 512; longer texts are
                                  truncated), tokenizer=FILE (default tokenizer.json: WordPiece, BPE or Unigram, else vocab.txt
                                  beside the model), device=cpu|cuda (default cpu), threads=N (ONNX Runtime intra-op
                                  threads; default its own), optimization=all|extended|basic|none (default all)
        Notes:
          Relative paths resolve against the working directory. Spaces around + * ; ( ) are ignored, and
          arguments are trimmed. A '+' starts a new term only before [W*]KIND: or NAME( of a known kind or
          ensemble, so a regex may contain + and *; write \d{1,}min rather than \d+min( in a regex. Inside an
          ensemble, ';' and unbalanced parentheses end a regex: write them as \; \( \).
        """;

    // Matches '+' or ';' then [W*] NAME then ':' or '(' inside an argument, to explain an argument that swallowed
    // what was meant as another term, such as "length:3+lenght:4" or "length:3;length:4" outside an ensemble.
    [GeneratedRegex(@"([+;])\s*(?:[-+.\w]+\s*\*\s*)?([A-Za-z_][\w-]*)\s*[:(]", RegexOptions.CultureInvariant)]
    private static partial Regex SwallowedTerm();

    private sealed partial class Parser(string spec, RewardSpecContext context)
    {
        private readonly string _spec = spec;
        private readonly RewardSpecContext _context = context;
        private int _position;

        public IReward ParseSpec()
        {
            if (string.IsNullOrWhiteSpace(_spec))
            {
                throw Error("empty spec: write at least one term such as length:40 or lexicon:positive");
            }

            IReward reward = ParseSum(depth: 0, inEnsemble: false);
            SkipSpaces();
            if (_position < _spec.Length)
            {
                throw _spec[_position] switch
                {
                    ')' => Error($"unbalanced parentheses: ')' at position {_position} has no matching '('"),
                    _ => Error($"unexpected '{Excerpt(_position)}' after a complete term (terms are joined with '+')"),
                };
            }

            return reward;
        }

        /// <summary>sum := term ('+' term)*. Stops before ';', ')' or anything that does not continue the sum.</summary>
        private IReward ParseSum(int depth, bool inEnsemble)
        {
            var terms = new List<WeightedTerm> { ParseTerm(depth, inEnsemble) };
            while (true)
            {
                SkipSpaces();
                if (_position < _spec.Length && _spec[_position] == '+')
                {
                    _position++;
                    terms.Add(ParseTerm(depth, inEnsemble));
                    continue;
                }

                break;
            }

            return terms.Count == 1 && terms[0].Weight == 1.0 ? terms[0].Reward : new WeightedReward(terms);
        }

        /// <summary>term := [weight '*'] (kind ':' argument | ensemble '(' ... ')').</summary>
        private WeightedTerm ParseTerm(int depth, bool inEnsemble)
        {
            SkipSpaces();
            int termStart = _position;
            if (_position >= _spec.Length)
            {
                throw Error($"missing term at the end, after '{Before(termStart)}'");
            }

            if (_spec[_position] is ';' or ')' or '+')
            {
                throw Error($"empty term before '{Excerpt(_position)}'");
            }

            double weight = 1.0;
            int runEnd = ScanNumberRun(_position);
            int star = SkipSpaces(runEnd);
            if (runEnd > _position && star < _spec.Length && _spec[star] == '*')
            {
                string text = _spec[_position..runEnd];
                if (!TryParseFinite(text, out weight))
                {
                    throw Error($"bad weight '{text}' in '{Excerpt(termStart)}' (a weight is a finite number such as 0.5 or -2)");
                }

                _position = SkipSpaces(star + 1);
            }

            int nameStart = _position;
            int nameEnd = ScanName(nameStart);
            string name = _spec[nameStart..nameEnd];
            if (name.Length == 0)
            {
                if (_position < _spec.Length && _spec[_position] == '-' && ScanName(_position + 1) is int signedEnd && signedEnd > _position + 1)
                {
                    throw Error($"bad weight '-' in '{Excerpt(nameStart)}': write a negative weight with '*', as in -1*{_spec[(_position + 1)..signedEnd]}:...");
                }

                throw Error(_position < _spec.Length && _spec[_position] == '('
                    ? $"unexpected '(' at '{Excerpt(_position)}': parentheses only follow an ensemble name (mean, min, meanstd, calibrated)"
                    : $"expected a term (KIND:ARG, WEIGHT*KIND:ARG or mean/min/meanstd/calibrated(...)) at '{Excerpt(_position)}'");
            }

            if (nameEnd < _spec.Length && _spec[nameEnd] == ':')
            {
                if (!Kinds.Contains(name))
                {
                    throw Error($"unknown kind '{name}' in '{Excerpt(nameStart)}' (known kinds: {string.Join(", ", Kinds)})");
                }

                int argumentStart = nameEnd + 1;
                _position = ScanArgument(argumentStart, name, inEnsemble);
                string argument = _spec[argumentStart.._position].Trim();
                if (argument.Length == 0)
                {
                    throw Error($"missing argument after '{name}:' (write {name}:{ArgumentHint(name)})");
                }

                return new WeightedTerm(weight, CreateKind(name, argument));
            }

            int open = SkipSpaces(nameEnd);
            if (open < _spec.Length && _spec[open] == '(')
            {
                if (!EnsembleNames.Contains(name))
                {
                    throw Error(Kinds.Contains(name)
                        ? $"unknown ensemble '{name}(': '{name}' is a kind, written {name}:{ArgumentHint(name)}"
                        : $"unknown ensemble '{name}(' (known ensembles: {string.Join(", ", EnsembleNames)})");
                }

                _position = open + 1;
                return new WeightedTerm(weight, ParseEnsemble(name, nameStart, depth + 1));
            }

            if (Kinds.Contains(name))
            {
                throw Error($"missing argument: '{name}' needs ':' and an argument ({name}:{ArgumentHint(name)})");
            }

            if (EnsembleNames.Contains(name))
            {
                throw Error($"'{name}' is an ensemble and needs its members in parentheses: {EnsembleHint(name)}");
            }

            throw Error($"unknown kind '{name}' at '{Excerpt(nameStart)}' (known kinds: {string.Join(", ", Kinds)}; ensembles: {string.Join(", ", EnsembleNames)})");
        }

        /// <summary>After NAME '(': [LAMBDA ';'] sum (';' sum)* ')'.</summary>
        private IReward ParseEnsemble(string name, int nameStart, int depth)
        {
            if (depth > MaxNesting)
            {
                throw Error($"ensembles nested deeper than {MaxNesting} levels at '{Excerpt(nameStart)}'");
            }

            double lambda = 0.0;
            if (name == "meanstd")
            {
                int start = _position;
                while (_position < _spec.Length && _spec[_position] is not (';' or ')'))
                {
                    _position++;
                }

                string text = _spec[start.._position].Trim();
                if (_position >= _spec.Length && text.Length == 0)
                {
                    throw Unclosed(name, nameStart);
                }

                if (!TryParseFinite(text, out lambda) || lambda < 0.0)
                {
                    throw Error($"bad lambda '{text}' in '{Excerpt(nameStart)}': meanstd takes a finite number >= 0 first, {EnsembleHint(name)}");
                }

                if (_position >= _spec.Length)
                {
                    throw Unclosed(name, nameStart);
                }

                if (_spec[_position] == ')')
                {
                    throw Error($"'{Excerpt(nameStart)}' has no members after lambda: {EnsembleHint(name)}");
                }

                _position++;
            }

            var members = new List<IReward>();
            while (true)
            {
                if (SkipSpaces(_position) >= _spec.Length)
                {
                    throw Unclosed(name, nameStart);
                }

                members.Add(ParseSum(depth, inEnsemble: true));
                SkipSpaces();
                if (_position >= _spec.Length)
                {
                    throw Unclosed(name, nameStart);
                }

                char separator = _spec[_position++];
                if (separator == ')')
                {
                    break;
                }

                if (separator != ';')
                {
                    throw Error($"unexpected '{Excerpt(_position - 1)}' in '{name}(...)': members are separated by ';' and closed by ')'");
                }
            }

            if (name == "calibrated" && members.Count != 1)
            {
                throw Error($"'{Excerpt(nameStart)}' has {members.Count} members; calibrated takes one spec, calibrated(A): " +
                    "to calibrate several, write mean(calibrated(A);calibrated(B))");
            }

            return name switch
            {
                "calibrated" => new CalibratedReward(members[0]),
                "mean" => new RewardEnsemble(EnsembleMode.Mean, members),
                "min" => new RewardEnsemble(EnsembleMode.Min, members),
                _ => new RewardEnsemble(EnsembleMode.MeanMinusStd, members, lambda),
            };
        }
    }
}
