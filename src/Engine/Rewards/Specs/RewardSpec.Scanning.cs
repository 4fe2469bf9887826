using System.Globalization;
using System.Text.RegularExpressions;

namespace Tilt.Engine.Rewards.Specs;

public static partial class RewardSpec
{
    /// <summary>The parser's scanning: where arguments, names and numbers end, and the errors that name what went wrong.</summary>
    private sealed partial class Parser
    {
        /// <summary>
        /// The end of an argument that starts at <paramref name="start"/>: the end of the spec, a '+' that starts
        /// another term, a ')' with no '(' in the argument, or (inside an ensemble) a ';', each outside parentheses.
        /// In a regex, escaped characters and character classes hide all of these; in a similarity target, escaped characters.
        /// </summary>
        private int ScanArgument(int start, string kind, bool inEnsemble)
        {
            bool isRegex = kind == "regex";
            bool escapes = isRegex || kind == "similarity";
            int depth = 0;
            int i = start;
            while (i < _spec.Length)
            {
                char c = _spec[i];
                if (escapes && c == '\\')
                {
                    i += 2;
                    continue;
                }

                if (isRegex && c == '[')
                {
                    i = SkipCharacterClass(i);
                    continue;
                }

                if (c == '(')
                {
                    depth++;
                }
                else if (c == ')')
                {
                    if (depth == 0)
                    {
                        break;
                    }

                    depth--;
                }
                else if (depth == 0 && ((c == ';' && inEnsemble) || (c == '+' && StartsTerm(i + 1))))
                {
                    break;
                }

                i++;
            }

            return Math.Min(i, _spec.Length);
        }

        /// <summary>The index after the ']' closing the class that opens at <paramref name="open"/>.</summary>
        private int SkipCharacterClass(int open)
        {
            int i = open + 1;
            if (i < _spec.Length && _spec[i] == '^')
            {
                i++;
            }

            if (i < _spec.Length && _spec[i] == ']')
            {
                i++; // a ']' first in a class is literal
            }

            while (i < _spec.Length && _spec[i] != ']')
            {
                i += _spec[i] == '\\' ? 2 : 1;
            }

            return Math.Min(i + 1, _spec.Length);
        }

        /// <summary>Whether [W '*'] KIND ':' or [W '*'] ENSEMBLE '(' starts at <paramref name="i"/> (spaces allowed around W and '*').</summary>
        private bool StartsTerm(int i)
        {
            i = SkipSpaces(i);
            int runEnd = ScanNumberRun(i);
            int star = SkipSpaces(runEnd);
            if (runEnd > i && star < _spec.Length && _spec[star] == '*')
            {
                if (!TryParseFinite(_spec[i..runEnd], out _))
                {
                    return false;
                }

                i = SkipSpaces(star + 1);
            }

            int nameEnd = ScanName(i);
            if (nameEnd == i)
            {
                return false;
            }

            string name = _spec[i..nameEnd];
            if (nameEnd < _spec.Length && _spec[nameEnd] == ':')
            {
                return Kinds.Contains(name);
            }

            int open = SkipSpaces(nameEnd);
            return open < _spec.Length && _spec[open] == '(' && EnsembleNames.Contains(name);
        }

        /// <summary>A run that could be a weight: digits, letters, '.', '+', '-' (so "1e+3" and typos such as "x" both end at '*').</summary>
        private int ScanNumberRun(int i)
        {
            while (i < _spec.Length && (char.IsAsciiLetterOrDigit(_spec[i]) || _spec[i] is '.' or '+' or '-' or '_'))
            {
                i++;
            }

            return i;
        }

        /// <summary>The end of a kind or ensemble name at <paramref name="i"/>: a letter, then letters, digits, '_' or '-'.</summary>
        private int ScanName(int i)
        {
            if (i >= _spec.Length || !char.IsAsciiLetter(_spec[i]))
            {
                return i;
            }

            while (i < _spec.Length && (char.IsAsciiLetterOrDigit(_spec[i]) || _spec[i] is '_' or '-'))
            {
                i++;
            }

            return i;
        }

        private static bool TryParseFinite(string text, out double value) =>
            double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

        private void SkipSpaces() => _position = SkipSpaces(_position);

        private int SkipSpaces(int i)
        {
            while (i < _spec.Length && char.IsWhiteSpace(_spec[i]))
            {
                i++;
            }

            return i;
        }

        private string Prefix => $"reward spec '{_spec}': ";

        private TiltException Error(string problem) => new(Prefix + problem);

        private TiltException Unclosed(string name, int nameStart) =>
            Error($"unbalanced parentheses: '{name}(' at position {nameStart} is not closed with ')'");

        /// <summary>The spec from <paramref name="i"/>, cut to a readable length.</summary>
        private string Excerpt(int i)
        {
            const int MaxLength = 40;
            string rest = _spec[i..];
            return rest.Length <= MaxLength ? rest : rest[..MaxLength] + "...";
        }

        private string Before(int i) => _spec[..i].Trim();

        private static string ArgumentHint(string kind) => kind switch
        {
            "length" => "TOKENS, e.g. length:40",
            "lexicon" => "FILE or lexicon:positive / negative / sentiment",
            "regex" => "PATTERN, e.g. regex:\\bhappy\\b",
            "onnx" => "MODEL.onnx[,label=I][,input=response], e.g. onnx:reward-model.onnx",
            "similarity" => "MODEL.onnx|TARGET TEXT, e.g. similarity:model.onnx|a happy story about friends",
            "dpo" => "POLICY.gguf,REF.gguf[,beta=B], e.g. dpo:tuned.gguf,base.gguf,beta=0.1",
            "rm" => "BACKBONE.gguf,HEAD[,template=NAME], e.g. rm:reward-model.gguf,reward.head",
            _ => "FILE, e.g. head:reward.head",
        };

        private static string EnsembleHint(string name) => name switch
        {
            "meanstd" => "meanstd(LAMBDA;A;B;...)",
            "calibrated" => "calibrated(A)",
            _ => $"{name}(A;B;...)",
        };

        /// <summary>Explains an argument that swallowed a term: "length:3+lenght:4" reads as length "3+lenght:4".</summary>
        private static string PlusHint(string argument)
        {
            foreach (Match match in SwallowedTerm().Matches(argument))
            {
                string name = match.Groups[2].Value;
                if (match.Groups[1].Value == ";")
                {
                    return " (note: ';' separates the members of an ensemble only, as in mean(A;B); join terms of a sum with '+')";
                }

                if (!Kinds.Contains(name) && !EnsembleNames.Contains(name))
                {
                    return $" (note: '+' starts a new term only before a known kind or ensemble, and '{name}' is not one; kinds: {string.Join(", ", Kinds)})";
                }
            }

            return "";
        }
    }
}
