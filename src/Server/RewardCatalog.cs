using System.Text.Json;
using Tilt.Engine;
using Tilt.Engine.Heads;
using Tilt.Engine.IO;
using Tilt.Engine.Models;
using Tilt.Engine.Rewards;
using Tilt.Engine.Values;
using Tilt.Engine.Rewards.Specs;

namespace Tilt.Server;

/// <summary>
/// The rewards and value heads requests may name: the built-ins (sentiment, positive, negative), the operator's
/// --rewards file, and inline specs that read no files (length:N, regex:P with a match timeout, the built-in lexicons,
/// sums and ensembles of these). Files named by a request are refused unless --allow-files allows their directory.
/// </summary>
/// <remarks>Rewards and heads keep scratch buffers, so each request gets its own instances.</remarks>
internal sealed class RewardCatalog
{
    /// <summary>The reward a request with an alignment object but no reward gets.</summary>
    public const string DefaultReward = "sentiment";

    private readonly Dictionary<string, string> _rewards = new(StringComparer.Ordinal)
    {
        ["sentiment"] = "lexicon:sentiment",
        ["positive"] = "lexicon:positive",
        ["negative"] = "lexicon:negative",
    };

    private readonly Dictionary<string, string> _valueHeads = new(StringComparer.Ordinal);
    private readonly string _trustedBase;
    private readonly FileSandbox _sandbox;
    private readonly RequestLimits _limits;
    private readonly ModelInfo _model;

    public RewardCatalog(string? rewardsFile, FileSandbox sandbox, RequestLimits limits, ModelInfo model)
    {
        _sandbox = sandbox;
        _limits = limits;
        _model = model;
        _trustedBase = Directory.GetCurrentDirectory();
        if (rewardsFile is not null) Load(rewardsFile);
    }

    public IReadOnlyCollection<string> RewardNames => _rewards.Keys;
    public IReadOnlyCollection<string> ValueHeadNames => _valueHeads.Keys;

    /// <summary>A fresh reward for a request's <c>alignment.reward</c>; a problem is a 400 naming the field.</summary>
    public IReward Reward(string nameOrSpec)
    {
        const string Param = "alignment.reward";
        try
        {
            if (_rewards.TryGetValue(nameOrSpec, out var spec))
                return RewardSpec.Parse(spec, TrustedContext());
            if (nameOrSpec.Length > _limits.MaxRewardSpecChars)
                throw ApiException.BadField(Param, $"alignment.reward is {nameOrSpec.Length} characters; the limit is {_limits.MaxRewardSpecChars}");
            return RewardSpec.Parse(nameOrSpec, new RewardSpecContext
            {
                BaseDirectory = _sandbox.BaseDirectory,
                FilePolicy = _sandbox.Authorize,
                RegexMatchTimeout = _limits.RegexMatchTimeout,
                HeadRewardFactory = path => HeadReward.Load(path, _model),
            });
        }
        catch (TiltException e)
        {
            throw ApiException.BadField(Param,
                $"alignment.reward '{Clip(nameOrSpec)}': {e.Message} (named rewards: {string.Join(", ", _rewards.Keys.Order(StringComparer.Ordinal))})");
        }
    }

    /// <summary>A fresh value for a request's <c>alignment.value_head</c>.</summary>
    public IValueFunction ValueHead(string name)
    {
        const string Param = "alignment.value_head";
        try
        {
            if (_valueHeads.TryGetValue(name, out var path)) return HeadValue.Load(path, _model);
            if (_sandbox.Root is null)
                throw new TiltException($"unknown value head (named heads: {(_valueHeads.Count == 0 ? "none" : string.Join(", ", _valueHeads.Keys.Order(StringComparer.Ordinal)))})");
            return HeadValue.Load(_sandbox.Authorize(Path.GetFullPath(name, _sandbox.Root)), _model);
        }
        catch (TiltException e)
        {
            throw ApiException.BadField(Param, $"alignment.value_head '{Clip(name)}': {e.Message}");
        }
    }

    private RewardSpecContext TrustedContext() => new()
    {
        BaseDirectory = _trustedBase,
        RegexMatchTimeout = _limits.RegexMatchTimeout,
        HeadRewardFactory = path => HeadReward.Load(path, _model),
    };

    private void Load(string file)
    {
        string full = Path.GetFullPath(file);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(InputFile.ReadAllBytes(full, "reward catalog"));
        }
        catch (Exception e) when (e is TiltException or JsonException)
        {
            throw new TiltException($"--rewards {file}: {e.Message}", e);
        }
        using (doc)
        {
            string dir = Path.GetDirectoryName(full)!;
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new TiltException($"--rewards {file}: expected an object {{\"rewards\": {{NAME: SPEC}}, \"value_heads\": {{NAME: FILE}}}}");
            foreach (var section in doc.RootElement.EnumerateObject())
            {
                if (section.Name is not ("rewards" or "value_heads") || section.Value.ValueKind != JsonValueKind.Object)
                    throw new TiltException($"--rewards {file}: unknown or malformed section '{section.Name}' (expected objects \"rewards\" and \"value_heads\")");
                foreach (var entry in section.Value.EnumerateObject())
                {
                    if (entry.Value.ValueKind != JsonValueKind.String || entry.Value.GetString() is not { Length: > 0 } text)
                        throw new TiltException($"--rewards {file}: {section.Name}.{entry.Name} must be a non-empty string");
                    if (section.Name == "rewards")
                    {
                        // Parsed now, so a broken spec stops the server at start; the canonical form has absolute paths.
                        var reward = RewardSpec.Parse(text, new RewardSpecContext { BaseDirectory = dir, HeadRewardFactory = path => HeadReward.Load(path, _model) });
                        _rewards[entry.Name] = reward.Description;
                    }
                    else
                    {
                        string path = Path.GetFullPath(text, dir);
                        HeadValue.Load(path, _model);
                        _valueHeads[entry.Name] = path;
                    }
                }
            }
        }
    }

    private static string Clip(string text) => text.Length <= 80 ? text : text[..80] + "...";
}
