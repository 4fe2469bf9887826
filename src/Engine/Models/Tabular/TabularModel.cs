using System.Security.Cryptography;
using System.Text;
using Tilt.Engine.IO;
using Tilt.Engine.Text;

namespace Tilt.Engine.Models.Tabular;

/// <summary>
/// An exact first-order Markov language model behind the same <see cref="ILanguageModel"/> abstraction
/// as GGUF models. Every sequence probability is known in closed form, so tests can enumerate the
/// output space and compare sampled frequencies and aligned policies with exact distributions.
/// Hidden state: one-hot of the current Markov state (each token, plus a start state), d = V + 1.
/// </summary>
public sealed class TabularModel : ILanguageModel
{
    /// <summary>Probabilities in a row must sum to 1 within this.</summary>
    public const double SumTolerance = 1e-9;

    private readonly string[] _vocabulary;
    private readonly Dictionary<string, int> _ids;
    private readonly double[][] _next; // [state, vocab]: p(next token | state); state V is the start state

    private TabularModel(ModelInfo info, string[] vocabulary, Dictionary<string, int> ids, double[][] next) =>
        (Info, _vocabulary, _ids, _next) = (info, vocabulary, ids, next);

    public ModelInfo Info { get; }

    /// <summary>Token strings by id.</summary>
    public IReadOnlyList<string> Vocabulary => _vocabulary;

    /// <summary>Index of the state used after an empty prompt.</summary>
    public int StartState => _vocabulary.Length;

    /// <summary>Loads and validates a tabular model JSON file.</summary>
    public static TabularModel Load(string path)
    {
        string fullPath = Path.GetFullPath(path);
        if (InputFile.Problem(fullPath, "model file") is { } problem) throw new ModelLoadException(fullPath, problem);
        byte[] bytes;
        try
        {
            bytes = InputFile.ReadAllBytes(fullPath, "model file");
        }
        catch (TiltException e)
        {
            throw new ModelLoadException(fullPath, e.Message.StartsWith(fullPath + ": ", StringComparison.Ordinal) ? e.Message[(fullPath.Length + 2)..] : e.Message, e);
        }
        string json = Encoding.UTF8.GetString(bytes);
        var file = TabularModelFile.Parse(json, fullPath);
        return FromFile(file, fullPath, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    /// <summary>Builds a model from its JSON form (validated the same way as a file).</summary>
    public static TabularModel FromFile(TabularModelFile file, string source = "<memory>", string? fingerprint = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        void Fail(string problem) => throw new ModelLoadException(source, problem);

        if (file.Format != TabularModelFile.CurrentFormat)
            Fail($"format is '{file.Format}', expected '{TabularModelFile.CurrentFormat}'");
        if (file.Vocabulary is not { Count: > 0 } vocabList) { Fail("vocabulary is missing or empty"); return null!; }
        var vocabulary = vocabList.ToArray();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vocabulary.Length; i++)
        {
            string token = vocabulary[i];
            if (string.IsNullOrEmpty(token) || token.Any(char.IsWhiteSpace))
                Fail($"vocabulary[{i}] = '{token}': tokens must be non-empty and contain no whitespace");
            if (!ids.TryAdd(token, i)) Fail($"vocabulary[{i}] = '{token}' appears twice");
        }
        if (file.Eos is null || !ids.TryGetValue(file.Eos, out int eos)) { Fail($"eos '{file.Eos}' is not in the vocabulary"); return null!; }
        if (file.Start is null) Fail("start (the distribution after an empty prompt) is missing");
        if (file.Transitions is null) Fail("transitions are missing");

        int v = vocabulary.Length;
        var next = new double[v + 1][];
        next[v] = Row(file.Start!, "start");
        foreach (var (from, row) in file.Transitions!)
        {
            if (!ids.TryGetValue(from, out int state)) Fail($"transitions.{from}: unknown token '{from}'");
            if (state == eos) Fail($"transitions.{from}: the EOS token ends a response and has no transitions");
            next[state] = Row(row, $"transitions.{from}");
        }
        for (int t = 0; t < v; t++)
            if (t != eos && next[t] is null)
                Fail($"transitions.{vocabulary[t]} is missing: every non-EOS token needs a next-token distribution");
        next[eos] = new double[v]; // unreachable as a state: stepping past EOS is refused

        var info = new ModelInfo
        {
            Kind = ModelKind.Tabular,
            Path = source,
            VocabularySize = v,
            BosToken = null,
            EosToken = eos,
            HiddenSize = v + 1,
            TrainedContextSize = int.MaxValue,
            Fingerprint = fingerprint ?? "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(file.ToJson()))),
            Description = $"tabular Markov model, vocab {v}{(file.Description is { Length: > 0 } d ? ": " + d : "")}",
        };
        return new TabularModel(info, vocabulary, ids, next);

        double[] Row(Dictionary<string, double>? probabilities, string where)
        {
            if (probabilities is null) Fail($"{where} is null; expected an object of next-token probabilities");
            var row = new double[v];
            double sum = 0;
            foreach (var (token, p) in probabilities!)
            {
                if (!ids.TryGetValue(token, out int id)) Fail($"{where}: unknown token '{token}'");
                if (!double.IsFinite(p) || p < 0 || p > 1) Fail($"{where}.{token}: probability {p} is not in [0, 1]");
                row[id] = p;
                sum += p;
            }
            if (Math.Abs(sum - 1) > SumTolerance)
                Fail($"{where}: probabilities sum to {sum:R}, not 1 (tolerance {SumTolerance})");
            return row;
        }
    }

    /// <summary>p(next = token | state).</summary>
    public double NextProbability(int state, int token) => _next[state][token];

    /// <summary>The state after a prompt: its last token, or the start state for an empty prompt.</summary>
    public int StateAfter(ReadOnlySpan<int> prompt)
    {
        if (prompt.IsEmpty) return StartState;
        int last = prompt[^1];
        if (last == Info.EosToken) throw new RequestException("the prompt ends with EOS: there is nothing to continue");
        return last;
    }

    /// <summary>
    /// Exact log p(continuation | prompt): the product of the transition probabilities of every token of
    /// the continuation (EOS included when present). For a continuation cut at a length limit this is
    /// the probability of that prefix, so the outputs of a length-limited run also sum to 1.
    /// </summary>
    public double SequenceLogProbability(ReadOnlySpan<int> prompt, ReadOnlySpan<int> continuation)
    {
        int state = StateAfter(prompt);
        double logp = 0;
        foreach (int t in continuation)
        {
            if (state == Info.EosToken) return double.NegativeInfinity;
            logp += Math.Log(_next[state][t]);
            state = t;
        }
        return logp;
    }

    /// <summary>
    /// Every possible output of a run with at most <paramref name="maxTokens"/> generated tokens, with
    /// its exact probability: sequences ending in EOS (EOS included in the tokens), and sequences cut
    /// at the limit. Probabilities sum to 1.
    /// </summary>
    /// <exception cref="RequestException">More than <paramref name="maxOutputs"/> outputs.</exception>
    public IReadOnlyList<TabularOutput> EnumerateOutputs(ReadOnlySpan<int> prompt, int maxTokens, int maxOutputs = 1_000_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        var outputs = new List<TabularOutput>();
        var path = new List<int>(maxTokens);
        Walk(StateAfter(prompt), 0.0);
        return outputs;

        void Walk(int state, double logp)
        {
            for (int t = 0; t < _vocabulary.Length; t++)
            {
                double p = _next[state][t];
                if (p <= 0) continue;
                path.Add(t);
                double lp = logp + Math.Log(p);
                bool eos = t == Info.EosToken;
                if (eos || path.Count == maxTokens)
                {
                    if (outputs.Count >= maxOutputs)
                        throw new RequestException($"the tabular model has more than {maxOutputs} outputs of up to {maxTokens} tokens");
                    outputs.Add(new TabularOutput(path.ToArray(), lp, eos));
                }
                else
                {
                    Walk(t, lp);
                }
                path.RemoveAt(path.Count - 1);
            }
        }
    }

    public int[] Tokenize(string text, bool addBos = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        var tokens = new int[words.Length];
        for (int i = 0; i < words.Length; i++)
        {
            if (!_ids.TryGetValue(words[i], out tokens[i]))
                throw new RequestException($"prompt word '{words[i]}' is not in the tabular model's vocabulary");
        }
        return tokens;
    }

    public ITextDecoder CreateTextDecoder() => new WordDecoder(this);

    public string Detokenize(ReadOnlySpan<int> tokens)
    {
        var words = new List<string>(tokens.Length);
        foreach (int t in tokens)
            if (t != Info.EosToken) words.Add(TokenText(t));
        return string.Join(' ', words);
    }

    /// <summary>The string of a token id.</summary>
    public string TokenText(int token) =>
        (uint)token < (uint)_vocabulary.Length
            ? _vocabulary[token]
            : throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary (0..{_vocabulary.Length - 1})");

    public IDecodingSession CreateSession(SessionOptions options) => new TabularDecodingSession(this, options);

    public void Dispose()
    {
    }

    /// <summary>Words joined by single spaces; EOS prints nothing.</summary>
    private sealed class WordDecoder(TabularModel model) : ITextDecoder
    {
        private bool _any;

        public string Push(int token)
        {
            if (token == model.Info.EosToken) return string.Empty;
            string word = model.TokenText(token);
            string text = _any ? " " + word : word;
            _any = true;
            return text;
        }

        public string Flush() => string.Empty;

        public string Preview(ReadOnlySpan<int> tokens)
        {
            var text = new System.Text.StringBuilder();
            bool any = _any;
            foreach (int t in tokens)
            {
                if (t == model.Info.EosToken) continue;
                if (any) text.Append(' ');
                text.Append(model.TokenText(t));
                any = true;
            }
            return text.ToString();
        }
    }
}

/// <summary>One output of a tabular model with its exact log-probability.</summary>
public sealed record TabularOutput(int[] Tokens, double LogProbability, bool EndsWithEos);
