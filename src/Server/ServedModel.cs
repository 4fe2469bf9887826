using Tilt.Engine.Models;
using Tilt.Hosting;

namespace Tilt.Server;

/// <summary>
/// One model as the server serves it: its engine (built and owned by Tilt.Hosting's <c>AddTilt</c>), the model itself
/// (for tokenizing prompts and chat templates) and the reward catalog checked against it.
/// </summary>
public sealed class ServedModel
{
    internal ServedModel(TiltEngine engine, RewardCatalog catalog, long created)
    {
        Engine = engine;
        Catalog = catalog;
        Created = created;
    }

    /// <summary>The model's id in the API: its configured name (<c>--model NAME=FILE</c>; a bare file: its name without extension).</summary>
    public string Id => Engine.Name;

    /// <summary>Other names requests may use for it (<c>--alias NAME=MODEL</c>).</summary>
    public IReadOnlyList<string> Aliases => Engine.Aliases;

    /// <summary>The loaded model. Owned by the host.</summary>
    public ILanguageModel Model => Engine.LanguageModel;

    /// <summary>The model's engine; requests on it share its batches.</summary>
    public TiltEngine Engine { get; }

    /// <summary>When the server made the model available (Unix seconds; the card's <c>created</c>).</summary>
    public long Created { get; }

    internal RewardCatalog Catalog { get; }

    internal ModelCard Card() => new(Id, "model", Created, "tilt", Model.Info.Description, Aliases.Count > 0 ? Aliases : null);
}
