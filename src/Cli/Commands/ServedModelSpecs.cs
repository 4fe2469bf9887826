using Tilt.Hosting;

namespace Tilt.Cli.Commands;

/// <summary>
/// <c>tilt serve</c>'s <c>--model [NAME=]FILE</c> and <c>--alias NAME=MODEL</c> (both repeatable), read into Tilt.Hosting's
/// options. A bare file is named as the server always named it, by its file name without extension. Every mistake is a
/// user error naming the option and the value: the names route requests, so each must lead to exactly one model.
/// </summary>
internal sealed record ServedModelSpecs(IReadOnlyList<(string Name, string File)> Models, IReadOnlyList<(string Alias, string Model)> Aliases)
{
    /// <summary>Reads the options' values; <paramref name="fallbackFile"/> is served when no --model is given.</summary>
    /// <exception cref="TiltException">A malformed value, an empty or repeated name, or an alias of no model.</exception>
    public static ServedModelSpecs Parse(IReadOnlyList<string> models, IReadOnlyList<string> aliases, Func<string> fallbackFile)
    {
        var byName = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase); // name -> the --model value that gave it
        var list = new List<(string, string)>();
        foreach (string spec in models.Count > 0 ? models : [fallbackFile()])
        {
            var (name, file) = Model(spec);
            if (!byName.TryAdd(name, spec))
                throw new TiltException($"--model '{spec}': the name '{name}' is already taken by --model '{byName[name]}'; give each model its own NAME=FILE");
            list.Add((name, file));
        }

        var aliasList = new List<(string, string)>();
        var taken = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase); // alias -> its model
        foreach (string spec in aliases)
        {
            var (alias, model) = Split(spec, "--alias", "NAME=MODEL", "the alias", "the model");
            if (!byName.ContainsKey(model))
                throw new TiltException($"--alias '{spec}': there is no model named '{model}' (models: {string.Join(", ", list.Select(m => m.Item1))})");
            if (byName.ContainsKey(alias))
                throw new TiltException($"--alias '{spec}': '{alias}' is already the name of a model");
            if (!taken.TryAdd(alias, model))
                throw new TiltException($"--alias '{spec}': '{alias}' is already an alias of '{taken[alias]}'");
            aliasList.Add((alias, list.First(m => string.Equals(m.Item1, model, StringComparison.OrdinalIgnoreCase)).Item1));
        }
        return new ServedModelSpecs(list, aliasList);
    }

    /// <summary>Adds every model and its aliases to <paramref name="options"/>, each configured by <paramref name="configure"/>; the first is the default.</summary>
    public void AddTo(TiltOptions options, Action<TiltModelOptions> configure)
    {
        foreach (var (name, file) in Models)
        {
            var model = options.AddModel(name, file);
            configure(model);
            model.Aliases.AddRange(Aliases.Where(a => a.Model == name).Select(a => a.Alias));
        }
        // A request that names no model goes to the first one given.
        options.DefaultModel = Models[0].Name;
    }

    /// <summary>
    /// NAME=FILE when the text before the first '=' is a name (no path separator in it); otherwise the whole value is a
    /// file (so ./a=b.gguf is a file whose name holds '=').
    /// </summary>
    private static (string Name, string File) Model(string spec)
    {
        int eq = spec.IndexOf('=', StringComparison.Ordinal);
        if (eq < 0 || spec.AsSpan(0, eq).IndexOfAny('/', '\\') >= 0)
        {
            if (string.IsNullOrWhiteSpace(spec)) throw new TiltException("--model is empty; give a .gguf file or a tabular model JSON, or NAME=FILE");
            string name = Path.GetFileNameWithoutExtension(spec);
            if (string.IsNullOrWhiteSpace(name)) throw new TiltException($"--model '{spec}': no file name to name the model by; give NAME=FILE");
            return (name, spec);
        }
        return Split(spec, "--model", "NAME=FILE", "the name", "the file");
    }

    private static (string Left, string Right) Split(string spec, string option, string shape, string left, string right)
    {
        int eq = spec.IndexOf('=', StringComparison.Ordinal);
        if (eq < 0) throw new TiltException($"{option} '{spec}': expected {shape}");
        string a = spec[..eq].Trim(), b = spec[(eq + 1)..].Trim();
        if (a.Length == 0) throw new TiltException($"{option} '{spec}': {left} before '=' is empty (expected {shape})");
        if (b.Length == 0) throw new TiltException($"{option} '{spec}': {right} after '=' is empty (expected {shape})");
        return (a, b);
    }
}
