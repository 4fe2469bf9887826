using System.Globalization;
using Microsoft.Extensions.Options;
using Tilt.Engine.Models;

namespace Tilt.Hosting;

/// <summary>
/// Checks <see cref="TiltOptions"/> when the host starts (<c>ValidateOnStart</c>). Every failure names its setting by its
/// configuration key, e.g. <c>Tilt:Models:stories:Path</c>, so the same message serves code and appsettings.json.
/// </summary>
internal sealed class TiltOptionsValidator : IValidateOptions<TiltOptions>
{
    public ValidateOptionsResult Validate(string? name, TiltOptions options)
    {
        var failures = new List<string>();
        string root = TiltOptions.SectionName;
        if (options.Models.Count == 0)
            failures.Add($"{root}:Models: no model is configured (add one with options.AddModel(name, path) or {root}:Models:NAME:Path)");
        if (options.DefaultModel is { } defaultModel && !options.Models.ContainsKey(defaultModel))
            failures.Add($"{root}:DefaultModel: '{defaultModel}' is not a configured model (configured: {string.Join(", ", options.Models.Keys)})");
        if (options.DrainTimeout < TimeSpan.Zero || options.DrainTimeout > TimeSpan.FromMinutes(10))
            failures.Add($"{root}:DrainTimeout must be between 0 and 10 minutes, got {options.DrainTimeout}");
        if (options.NativeLibraryPath is { } native && !File.Exists(native))
            failures.Add($"{root}:NativeLibraryPath: {Path.GetFullPath(native)} not found");

        var aliasOwners = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach ((string model, TiltModelOptions m) in options.Models)
        {
            string key = $"{root}:Models:{model}";
            if (string.IsNullOrWhiteSpace(model)) failures.Add($"{root}:Models: a model has an empty name");
            if (m is null)
            {
                failures.Add($"{key}: no settings");
                continue;
            }

            if (m.ModelFactory is not null)
            {
                // The factory builds the model; a Path beside it would be ignored, so it is not checked.
            }
            else if (string.IsNullOrWhiteSpace(m.Path))
                failures.Add($"{key}:Path is required (a GGUF file or a tabular model JSON)");
            else if (!File.Exists(m.Path))
                failures.Add($"{key}:Path: {Path.GetFullPath(m.Path)} not found");
            Range(failures, $"{key}:MaxSequences", m.MaxSequences, 1, SessionOptions.MaxSupportedSequences);
            Range(failures, $"{key}:MaxSequenceLength", m.MaxSequenceLength, 2, 1 << 20);
            Range(failures, $"{key}:MaxQueuedRequests", m.MaxQueuedRequests, 0, 100_000);
            Range(failures, $"{key}:PromptCacheEntries", m.PromptCacheEntries, 0, SessionOptions.MaxSupportedSequences);
            if (m.Threads is { } threads) Range(failures, $"{key}:Threads", threads, 1, 4096);
            if (m.GpuLayers < 0) failures.Add($"{key}:GpuLayers must be 0 or more, got {m.GpuLayers}");
            if (!Enum.IsDefined(m.KvCacheType)) failures.Add($"{key}:KvCacheType: unknown value {m.KvCacheType}");
            if (!Enum.IsDefined(m.Backend)) failures.Add($"{key}:Backend: unknown value {m.Backend}");
            CheckAliases(failures, options, model, m, aliasOwners);
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>
    /// A name must lead to one model: an alias that is empty, is a model's name or is claimed twice would make routing by
    /// name ambiguous.
    /// </summary>
    private static void CheckAliases(List<string> failures, TiltOptions options, string model, TiltModelOptions m, Dictionary<string, string> owners)
    {
        string key = $"{TiltOptions.SectionName}:Models:{model}:Aliases";
        foreach (string? alias in m.Aliases)
        {
            if (string.IsNullOrWhiteSpace(alias))
                failures.Add($"{key}: an alias is empty");
            else if (options.Models.ContainsKey(alias))
                failures.Add($"{key}: '{alias}' is already the name of a model");
            else if (!owners.TryAdd(alias, model))
                failures.Add($"{key}: '{alias}' is already an alias of '{owners[alias]}'");
        }
    }

    private static void Range(List<string> failures, string key, int value, int min, int max)
    {
        if (value < min || value > max)
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{key} must be between {min} and {max}, got {value}"));
    }
}
