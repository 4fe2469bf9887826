using Tilt.Hosting;

namespace Tilt.Server;

/// <summary>
/// Every model a server serves, and the routing of a request's <c>model</c> field to one of them. A server with one model
/// answers whatever name a request gives (as llama-server does) and reports its own id; with several, a name or an alias
/// (case-insensitive) chooses the model, no name means the default model (<c>TiltOptions.DefaultModel</c>, else the first
/// configured), and an unknown name is OpenAI's 404.
/// </summary>
public sealed class ServedModels
{
    private readonly ITiltEngines _engines;
    private readonly Dictionary<TiltEngine, ServedModel> _byEngine;

    internal ServedModels(ITiltEngines engines, IReadOnlyList<ServedModel> all)
    {
        _engines = engines;
        All = all;
        _byEngine = all.ToDictionary(m => m.Engine);
        Default = DefaultOf(engines, all);
    }

    /// <summary>The models in the order they were configured.</summary>
    public IReadOnlyList<ServedModel> All { get; }

    /// <summary>What a request that names no model gets.</summary>
    public ServedModel Default { get; }

    /// <summary>The model a request's <c>model</c> field asks for.</summary>
    /// <exception cref="ApiException">404 <c>model_not_found</c> for an unknown name (several models).</exception>
    internal ServedModel Route(string? requested)
    {
        if (All.Count == 1) return All[0];
        if (requested is null) return Default;
        return Find(requested)
               ?? throw new ApiException(404, $"the model '{requested}' does not exist; this server serves {Served()}", "model", "model_not_found");
    }

    /// <summary>The model named or aliased <paramref name="id"/>, or null.</summary>
    internal ServedModel? Find(string id) => _engines.TryGet(id, out var engine) ? _byEngine[engine] : null;

    private string Served() => string.Join(", ", All.Select(m =>
        m.Aliases.Count == 0 ? $"'{m.Id}'" : $"'{m.Id}' (aliases {string.Join(", ", m.Aliases.Select(a => $"'{a}'"))})"));

    private static ServedModel DefaultOf(ITiltEngines engines, IReadOnlyList<ServedModel> all)
    {
        try
        {
            var engine = engines.Default;
            return all.First(m => m.Engine == engine);
        }
        catch (InvalidOperationException)
        {
            // Several models and no DefaultModel: ITiltEngines asks for a name; a server takes the first.
            return all[0];
        }
    }
}
