using System.Text;
using Tilt.Engine.Models;
using Tilt.Engine.Requests;

namespace Tilt.Server;

/// <summary>The engine's per-token log-probabilities in OpenAI's completions and chat shapes.</summary>
internal static class LogprobShapes
{
    /// <summary>
    /// Completions: tokens, token_logprobs, top_logprobs (null when <paramref name="top"/> is 0) and text offsets starting at
    /// <paramref name="offset"/>, which is advanced past these tokens (streamed chunks continue the count).
    /// </summary>
    public static LogprobsDto Completion(ILanguageModel model, IReadOnlyList<TokenLogProb> tokens, int top, ref int offset, double? sequence = null)
    {
        var pieces = new List<string>(tokens.Count);
        var values = new List<double?>(tokens.Count);
        var offsets = new List<int>(tokens.Count);
        var alternatives = top > 0 ? new List<Dictionary<string, double>?>(tokens.Count) : null;
        foreach (var t in tokens)
        {
            string piece = model.Detokenize([t.Token]);
            pieces.Add(piece);
            values.Add(Finite(t.LogProb));
            offsets.Add(offset);
            offset += piece.Length;
            if (alternatives is null) continue;
            if (double.IsNaN(t.LogProb))
            {
                alternatives.Add(null);
                continue;
            }
            // Two ids with the same text keep the more likely one (the list is most likely first).
            var map = new Dictionary<string, double>();
            foreach (var a in t.Top) map.TryAdd(model.Detokenize([a.Token]), a.LogProb);
            alternatives.Add(map);
        }
        return new LogprobsDto(pieces, values, alternatives, offsets, sequence);
    }

    /// <summary>
    /// Completions with echo: the prompt's tokens (the first without a value: null, as OpenAI's echo did), their text
    /// offsets aligned to the prompt text (a tokenizer's leading space before the first word is not in the prompt).
    /// </summary>
    public static LogprobsDto Echo(ILanguageModel model, string prompt, IReadOnlyList<TokenLogProb> tokens, int top)
    {
        int offset = 0;
        var dto = Completion(model, tokens, top, ref offset);
        string decoded = string.Concat(dto.Tokens);
        int shift = decoded.Length > prompt.Length && decoded.EndsWith(prompt, StringComparison.Ordinal) ? decoded.Length - prompt.Length : 0;
        var offsets = dto.TextOffset.Select(o => Math.Clamp(o - shift, 0, prompt.Length)).ToList();
        return dto with { TextOffset = offsets };
    }

    /// <summary>The echoed prompt's logprobs followed by the generated tokens'.</summary>
    public static LogprobsDto Concat(LogprobsDto first, LogprobsDto? second) => second is null ? first : new LogprobsDto(
        [.. first.Tokens, .. second.Tokens], [.. first.TokenLogprobs, .. second.TokenLogprobs],
        first.TopLogprobs is null || second.TopLogprobs is null ? null : [.. first.TopLogprobs, .. second.TopLogprobs],
        [.. first.TextOffset, .. second.TextOffset], second.SequenceLogprob);

    /// <summary>Chat: {token, logprob, bytes, top_logprobs} per token.</summary>
    public static ChatLogprobsDto Chat(ILanguageModel model, IReadOnlyList<TokenLogProb> tokens, double? sequence = null)
    {
        var content = new List<ChatTokenLogprob>(tokens.Count);
        foreach (var t in tokens)
        {
            string piece = model.Detokenize([t.Token]);
            var top = t.Top.Select(a => model.Detokenize([a.Token]) is var s ? new ChatTopLogprob(s, a.LogProb, Bytes(s)) : null!).ToList();
            content.Add(new ChatTokenLogprob(piece, Finite(t.LogProb), Bytes(piece), top));
        }
        return new ChatLogprobsDto(content, sequence);
    }

    // The UTF-8 of the token's text: a token that holds part of a multi-byte character reads as U+FFFD here.
    private static int[] Bytes(string piece) => [.. Encoding.UTF8.GetBytes(piece).Select(b => (int)b)];

    private static double? Finite(double x) => double.IsFinite(x) ? x : null;
}
