using Tilt.Engine.Heads;
using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Engine.Rewards.Llama;

/// <summary>
/// An LLM reward model hosted by llama.cpp: <c>rm:BACKBONE.gguf,HEAD[,template=NAME]</c>, HEAD a head file or a
/// safetensors file (then <c>[,tensor=NAME][,bias-tensor=NAME][,label=N]</c>, imported in memory). The prompt and the response
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

    private RewardModelReward(RewardBackbone backbone, HeadFile head, string headPath, string? templateOption, SafetensorsHead? safetensors)
    {
        _backbone = backbone;
        HeadPath = headPath;
        TemplateOption = templateOption;
        Safetensors = safetensors;
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

    /// <summary>The head's full path: a head file, or a safetensors file read directly (<see cref="Safetensors"/>).</summary>
    public string HeadPath { get; }

    /// <summary>The spec's <c>template=</c> value, or null when the backbone's own template (if any) is used.</summary>
    public string? TemplateOption { get; }

    /// <summary>Which tensors and label of a safetensors head; null for a head file.</summary>
    public SafetensorsHead? Safetensors { get; }

    public string Description =>
        $"rm:{BackbonePath},{HeadPath}{(TemplateOption is null ? "" : ",template=" + TemplateOption)}" +
        (Safetensors is { } t
            ? $",tensor={t.Tensor}{(t.BiasTensor is null ? "" : ",bias-tensor=" + t.BiasTensor)}{(t.Label is int l ? ",label=" + l.ToString(System.Globalization.CultureInfo.InvariantCulture) : "")}"
            : "");

    public bool NeedsHiddenState => false;

    /// <summary>
    /// Loads (or reuses) the backbone and reads the head: a head file (<c>tilt head import</c>), or, when
    /// <paramref name="safetensors"/> is given, the score head inside a Hugging Face safetensors file, imported in memory
    /// as <see cref="HeadImport"/> would; checks that the head fits this backbone.
    /// </summary>
    /// <exception cref="TiltException">A missing or bad file, a head of another hidden size (naming both sizes) or of
    /// another model, several labels and none chosen, or a template llama.cpp does not know.</exception>
    public static RewardModelReward Load(string backbonePath, string headPath, string? template = null, SafetensorsHead? safetensors = null)
    {
        ArgumentNullException.ThrowIfNull(backbonePath);
        ArgumentNullException.ThrowIfNull(headPath);
        if (template is { Length: 0 }) throw new TiltException("rm: template= is empty; give a template name such as chatml, or none");
        string headFull = Path.GetFullPath(headPath);
        if (safetensors is null)
        {
            var file = HeadFile.Read(headFull); // the small file first: a wrong head path fails before a large model loads
            return new RewardModelReward(RewardBackbone.Load(backbonePath), file, headFull, template, null);
        }
        var header = SafetensorsFile.Open(headFull); // likewise: the header only, before the backbone
        header.Find(safetensors.Tensor);
        var backbone = RewardBackbone.Load(backbonePath);
        var head = HeadImport.FromSafetensors(new HeadImportOptions
        {
            SafetensorsPath = headFull,
            Tensor = safetensors.Tensor,
            BiasTensor = safetensors.BiasTensor,
            Label = safetensors.Label,
            BackbonePath = backbone.Info.Path,
        }, backbone.Info.HiddenSize, backbone.Info.Fingerprint);
        return new RewardModelReward(backbone, head, headFull, template, safetensors);
    }

    /// <summary>
    /// Parses the argument of <c>rm:</c>: BACKBONE,HEAD[,template=NAME] and, for a HEAD ending in .safetensors,
    /// [,tensor=NAME][,bias-tensor=NAME][,label=N]; <paramref name="resolvePath"/> makes each path absolute (and
    /// applies a file policy).
    /// </summary>
    public static RewardModelReward Parse(string argument, Func<string, string> resolvePath)
    {
        ArgumentNullException.ThrowIfNull(argument);
        ArgumentNullException.ThrowIfNull(resolvePath);
        string[] parts = argument.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length < 2 || parts[0].Length == 0 || parts[1].Length == 0)
            throw new TiltException($"rm:{argument}: write rm:BACKBONE.gguf,HEAD[,template=NAME]");
        bool isSafetensors = parts[1].EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
        string keys = isSafetensors ? "template, tensor, bias-tensor, label" : "template (tensor, bias-tensor and label go with a .safetensors head)";
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string part in parts.Skip(2))
        {
            int equals = part.IndexOf('=');
            string key = equals < 0 ? part : part[..equals];
            bool known = key == "template" || (isSafetensors && key is "tensor" or "bias-tensor" or "label");
            if (equals < 0 || !known)
                throw new TiltException($"rm:{argument}: bad option '{part}' (options: {keys})");
            if (!values.TryAdd(key, part[(equals + 1)..]))
                throw new TiltException($"rm:{argument}: option '{key}' is given twice");
        }
        SafetensorsHead? safetensors = null;
        if (isSafetensors)
        {
            int? label = null;
            if (values.TryGetValue("label", out string? text))
                label = int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n)
                    ? n
                    : throw new TiltException($"rm:{argument}: bad label '{text}' (a whole number >= 0)");
            safetensors = new SafetensorsHead(values.GetValueOrDefault("tensor", SafetensorsHead.DefaultTensor), values.GetValueOrDefault("bias-tensor"), label);
        }
        return Load(resolvePath(parts[0]), resolvePath(parts[1]), values.GetValueOrDefault("template"), safetensors);
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

/// <summary>Which score head to read from a safetensors file named directly in <c>rm:</c> (<c>tensor=</c>, <c>bias-tensor=</c>, <c>label=</c>).</summary>
/// <param name="Tensor">The weight, [hidden] or [labels, hidden].</param>
/// <param name="BiasTensor">The bias, or null for none (Hugging Face's sequence-classification score has none).</param>
/// <param name="Label">The row of a [labels, hidden] weight; required when there are several labels.</param>
public sealed record SafetensorsHead(string Tensor = SafetensorsHead.DefaultTensor, string? BiasTensor = null, int? Label = null)
{
    /// <summary>The weight of Hugging Face's <c>*ForSequenceClassification</c> score head.</summary>
    public const string DefaultTensor = "score.weight";
}
