using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Engine.Rewards.Llama;

/// <summary>
/// An LLM reward model hosted by llama.cpp: <c>rm:BACKBONE.gguf,HEAD[,template=NAME]</c>. The prompt and the response
/// are formatted as a user turn and an assistant turn with the backbone's own chat template (from its GGUF, or the named
/// one; <c>template=none</c> or a backbone without a template reads prompt + response as plain text), re-tokenized with
/// the backbone's vocabulary, and teacher-forced through it (<see cref="RewardBackbone"/>: all candidates of a call in
/// the same decodes); r = the head on the final hidden state of the last token (Hugging Face's sequence-classification
/// convention, w . h_last + b for an imported score head). The backbone computes its own hidden states, so the policy's
/// are not needed. Thread-safe.
/// </summary>
public sealed class RewardModelReward : IReward
{
    /// <summary>The <c>template=</c> value that turns formatting off (plain prompt + response).</summary>
    public const string NoTemplate = "none";

    private readonly RewardBackbone _backbone;
    private readonly ValueHead _head;
    private readonly Lock _headLock = new(); // kernel heads keep scratch buffers
    private readonly string? _template;       // Jinja text or a llama.cpp name; null: plain text

    private RewardModelReward(RewardBackbone backbone, HeadFile head, string headPath, string? templateOption)
    {
        _backbone = backbone;
        HeadPath = headPath;
        TemplateOption = templateOption;
        head.CheckModel(backbone.Info, $"rm: head {headPath} on backbone {backbone.Info.Path}");
        if (head.Header.Feature != "last")
            throw new TiltException($"rm: head {headPath} reads the '{head.Header.Feature}' feature; a reward model reads the last token's hidden state ('last')");
        _head = head.ToKernelHead(headPath);
        _template = templateOption switch
        {
            null => backbone.Info.ChatTemplate,
            NoTemplate => null,
            _ => templateOption,
        };
        if (_template is not null) Format("", ""); // an unknown template fails at parse time, not mid-request
    }

    /// <summary>The backbone's full path.</summary>
    public string BackbonePath => _backbone.Info.Path;

    /// <summary>The head file's full path.</summary>
    public string HeadPath { get; }

    /// <summary>The spec's <c>template=</c> value, or null when the backbone's own template (if any) is used.</summary>
    public string? TemplateOption { get; }

    public string Description => $"rm:{BackbonePath},{HeadPath}{(TemplateOption is null ? "" : ",template=" + TemplateOption)}";

    public bool NeedsHiddenState => false;

    /// <summary>Loads (or reuses) the backbone and reads the head; checks that the head was made for this backbone.</summary>
    /// <exception cref="TiltException">A missing or bad file, a head of another hidden size (naming both sizes) or of
    /// another model, or a template llama.cpp does not know.</exception>
    public static RewardModelReward Load(string backbonePath, string headPath, string? template = null)
    {
        ArgumentNullException.ThrowIfNull(backbonePath);
        ArgumentNullException.ThrowIfNull(headPath);
        if (template is { Length: 0 }) throw new TiltException("rm: template= is empty; give a template name such as chatml, or none");
        string headFull = Path.GetFullPath(headPath);
        var head = HeadFile.Read(headFull); // the small file first: a wrong head path fails before a large model loads
        return new RewardModelReward(RewardBackbone.Load(backbonePath), head, headFull, template);
    }

    /// <summary>Parses the argument of <c>rm:</c>: BACKBONE,HEAD[,template=NAME]; <paramref name="resolvePath"/> makes each path absolute (and applies a file policy).</summary>
    public static RewardModelReward Parse(string argument, Func<string, string> resolvePath)
    {
        ArgumentNullException.ThrowIfNull(argument);
        ArgumentNullException.ThrowIfNull(resolvePath);
        string[] parts = argument.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length is < 2 or > 3 || parts[0].Length == 0 || parts[1].Length == 0)
            throw new TiltException($"rm:{argument}: write rm:BACKBONE.gguf,HEAD[,template=NAME]");
        string? template = null;
        if (parts.Length == 3)
        {
            const string Key = "template=";
            if (!parts[2].StartsWith(Key, StringComparison.Ordinal))
                throw new TiltException($"rm:{argument}: bad option '{parts[2]}' (the only option is template=NAME: a chat template llama.cpp knows, or none)");
            template = parts[2][Key.Length..];
        }
        return Load(resolvePath(parts[0]), resolvePath(parts[1]), template);
    }

    /// <summary>The text the backbone reads for a prompt and a response.</summary>
    public string Format(string prompt, string response) =>
        _template is null
            ? prompt + response
            : ChatPrompt.Apply(_template, [new ChatMessage("user", prompt), new ChatMessage("assistant", response)], addAssistant: false);

    public void Score(IReadOnlyList<RewardInput> candidates, Span<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (rewards.Length < candidates.Count)
            throw new ArgumentException($"{candidates.Count} candidates but room for {rewards.Length} rewards", nameof(rewards));
        if (candidates.Count == 0) return;
        var texts = new int[candidates.Count][];
        for (int i = 0; i < texts.Length; i++) texts[i] = _backbone.Tokenize(Format(candidates[i].Prompt, candidates[i].Text));
        float[] hidden = _backbone.LastHiddenStates(texts); // [n, d]
        var scores = new float[texts.Length];
        lock (_headLock) _head.Score(hidden, texts.Length, scores);
        for (int i = 0; i < scores.Length; i++) rewards[i] = scores[i];
    }
}
