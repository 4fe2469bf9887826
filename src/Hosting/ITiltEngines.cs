namespace Tilt.Hosting;

/// <summary>The engines <c>services.AddTilt(...)</c> registered, one per configured model. Inject it anywhere.</summary>
public interface ITiltEngines
{
    /// <summary>The configured model names.</summary>
    IReadOnlyList<string> Names { get; }

    /// <summary>
    /// The model named by <see cref="TiltOptions.DefaultModel"/>, else the only configured one.
    /// </summary>
    /// <exception cref="InvalidOperationException">Several models are configured and no default is named.</exception>
    TiltEngine Default { get; }

    /// <summary>
    /// Completes once every model is loaded; faults with the first model that could not be (a
    /// <see cref="Tilt.Engine.TiltException"/> naming its setting and file), or is cancelled when the host stopped first.
    /// With <see cref="TiltOptions.LoadInBackground"/> false it completes before the host's start returns.
    /// </summary>
    Task WhenLoaded { get; }

    /// <summary>The engine of the model <paramref name="name"/> or of a model with that alias (case-insensitive).</summary>
    /// <exception cref="KeyNotFoundException">No such model; the message lists the configured ones.</exception>
    TiltEngine this[string name] { get; }

    /// <summary>The engine of the model named or aliased <paramref name="name"/>, when there is one.</summary>
    bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TiltEngine? engine);
}
