using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Tilt.Engine.IO;

namespace Tilt.Engine.Evaluation;

/// <summary>
/// Everything besides a point's own strategy parameters (which its <see cref="EvaluationConfig.Id"/> holds) that
/// changes an evaluated point's numbers. An evaluation folder records it in settings.json, and a resumed run
/// reuses the folder's points only when every field is equal, so points measured under different settings are
/// never mixed in one report.
/// </summary>
public sealed record EvaluationIdentity
{
    public const string FileName = "settings.json";
    public const string CurrentFormat = "tilt-evaluation/1";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public string Format { get; init; } = CurrentFormat;

    /// <summary>The model's <see cref="Models.ModelInfo.Fingerprint"/>.</summary>
    public required string Model { get; init; }

    /// <summary>The evaluation reward's canonical description.</summary>
    public required string Reward { get; init; }

    /// <summary>The value function of controlled decoding (with a head's weight hash when it is a trained head).</summary>
    public required string Value { get; init; }

    /// <summary>sha256 of the prompts, in order.</summary>
    public required string Prompts { get; init; }

    public required int PromptCount { get; init; }
    public required int OutputsPerPrompt { get; init; }
    public required int BaseSamplesPerPrompt { get; init; }
    public required int MaxTokens { get; init; }
    public required ulong Seed { get; init; }

    /// <summary>The forced opening of every response (evaluate --prefills); empty without one.</summary>
    public string ForcedPrefix { get; init; } = "";

    /// <summary>The identity of a sweep run with <paramref name="settings"/> on a model with <paramref name="modelFingerprint"/>.</summary>
    public static EvaluationIdentity Of(EvaluationSettings settings, string modelFingerprint, string valueDescription)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new EvaluationIdentity
        {
            Model = modelFingerprint,
            Reward = settings.Reward.Description,
            Value = valueDescription,
            Prompts = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', settings.Prompts.Select(p => p.Length.ToString(CultureInfo.InvariantCulture) + ":" + p))))),
            PromptCount = settings.Prompts.Count,
            OutputsPerPrompt = settings.OutputsPerPrompt,
            BaseSamplesPerPrompt = settings.BaseSamplesPerPrompt,
            MaxTokens = settings.MaxTokens,
            Seed = settings.Seed,
            ForcedPrefix = settings.ForcedPrefix ?? "",
        };
    }

    /// <summary>"reward: 'a' there, 'b' here" for the first field that differs from <paramref name="other"/>; null when equal.</summary>
    public string? FirstDifference(EvaluationIdentity other)
    {
        ArgumentNullException.ThrowIfNull(other);
        (string Name, object Here, object There)[] fields =
        [
            ("format", Format, other.Format),
            ("model fingerprint", Model, other.Model),
            ("--reward", Reward, other.Reward),
            ("value (--value-head/--value)", Value, other.Value),
            ("prompts (--prompts)", Prompts, other.Prompts),
            ("prompt count", PromptCount, other.PromptCount),
            ("--outputs", OutputsPerPrompt, other.OutputsPerPrompt),
            ("--base-samples", BaseSamplesPerPrompt, other.BaseSamplesPerPrompt),
            ("--max-tokens", MaxTokens, other.MaxTokens),
            ("--seed", Seed, other.Seed),
            ("forced prefix (--prefills)", ForcedPrefix, other.ForcedPrefix ?? ""),
        ];
        foreach (var (name, here, there) in fields)
        {
            if (!Equals(here, there))
                return string.Create(CultureInfo.InvariantCulture, $"{name}: '{there}' in the folder, '{here}' in this run");
        }
        return null;
    }

    /// <summary>Reads a settings file; a corrupt or incomplete one is a <see cref="TiltException"/> naming it.</summary>
    public static EvaluationIdentity Read(string path)
    {
        try
        {
            var identity = JsonSerializer.Deserialize<EvaluationIdentity>(InputFile.ReadAllBytes(path, "evaluation file"), Json)
                           ?? throw new TiltException($"{path}: the settings file is null");
            if (identity.Format is null || identity.Model is null || identity.Reward is null || identity.Value is null || identity.Prompts is null)
                throw new TiltException($"{path}: the settings file has a null field");
            return identity;
        }
        catch (JsonException e)
        {
            throw new TiltException($"{path}: corrupt settings file ({e.Message}); use --force to start afresh", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{path}: cannot read: {e.Message}", e);
        }
    }

    /// <summary>Writes the settings file atomically.</summary>
    public void Write(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, Json));
}
