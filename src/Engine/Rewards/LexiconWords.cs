using System.Globalization;
using System.Text;

namespace Tilt.Engine.Rewards;

/// <summary>
/// The word rule of <see cref="LexiconReward"/>. A word is a maximal run of letters, digits, combining marks and
/// apostrophes (' U+0027 or ’ U+2019); everything else (spaces, punctuation, hyphens, symbols) separates words.
/// Apostrophes at either end of a run are dropped, so a quoted 'happy' is the word happy while don't and children's
/// keep theirs. ’ is read as '. Words compare case-insensitively (ordinal, invariant case).
/// </summary>
internal static class LexiconWords
{
    /// <summary>The words of a text, as slices of it, in order.</summary>
    public static WordEnumerator Enumerate(ReadOnlySpan<char> text) => new(text);

    /// <summary>
    /// The lookup key of one lexicon entry: trimmed, apostrophes at the ends dropped, ’ read as ', lower case.
    /// Null with a reason when the entry is not exactly one word under the rule above.
    /// </summary>
    public static string? NormalizeEntry(string entry, out string problem)
    {
        string trimmed = entry.Trim();
        int i = 0;
        while (i < trimmed.Length)
        {
            Rune.DecodeFromUtf16(trimmed.AsSpan(i), out Rune rune, out int length);
            if (!IsWordRune(rune))
            {
                problem = $"'{trimmed}' is not a single word (a word is letters, digits and apostrophes only)";
                return null;
            }

            i += length;
        }

        string word = trimmed.Trim(Apostrophes).Replace(Typographic, Straight);
        if (word.Length == 0)
        {
            problem = trimmed.Length == 0 ? "empty word" : $"'{trimmed}' has no letters or digits (empty word)";
            return null;
        }

        problem = "";
        return word.ToLowerInvariant();
    }

    private const char Straight = '\'';
    private const char Typographic = '\u2019';
    private static readonly char[] Apostrophes = [Straight, Typographic];

    private static bool IsWordRune(Rune rune) =>
        Rune.IsLetterOrDigit(rune)
        || rune.Value is Straight or Typographic
        || Rune.GetUnicodeCategory(rune) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark;

    /// <summary>foreach-able enumerator of word slices; allocates nothing.</summary>
    public ref struct WordEnumerator(ReadOnlySpan<char> text)
    {
        private readonly ReadOnlySpan<char> _text = text;
        private int _position;

        public ReadOnlySpan<char> Current { get; private set; }

        public readonly WordEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            while (_position < _text.Length)
            {
                int start = -1;
                while (_position < _text.Length)
                {
                    // Invalid UTF-16 decodes as U+FFFD (a symbol), which separates words.
                    Rune.DecodeFromUtf16(_text[_position..], out Rune rune, out int length);
                    if (IsWordRune(rune))
                    {
                        start = _position;
                        break;
                    }

                    _position += length;
                }

                if (start < 0)
                {
                    return false;
                }

                while (_position < _text.Length)
                {
                    Rune.DecodeFromUtf16(_text[_position..], out Rune rune, out int length);
                    if (!IsWordRune(rune))
                    {
                        break;
                    }

                    _position += length;
                }

                ReadOnlySpan<char> word = _text[start.._position].Trim(Apostrophes);
                if (!word.IsEmpty)
                {
                    Current = word;
                    return true;
                }
            }

            return false;
        }
    }
}
