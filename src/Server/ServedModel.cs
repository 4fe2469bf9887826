using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Server;

/// <summary>The one model a server serves: the model (for tokenizing prompts and chat templates) and its decoding engine.</summary>
public sealed class ServedModel : IAsyncDisposable
{
    private readonly IStepKernels _kernels;

    /// <summary>Takes ownership of <paramref name="model"/> and <paramref name="kernels"/>; disposing this disposes them.</summary>
    public ServedModel(ILanguageModel model, IStepKernels kernels, EngineOptions? options = null)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        _kernels = kernels ?? throw new ArgumentNullException(nameof(kernels));
        Engine = new DecodingEngine(model, kernels, options);
        Id = Path.GetFileNameWithoutExtension(model.Info.Path);
        Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    }

    public ILanguageModel Model { get; }

    public DecodingEngine Engine { get; }

    /// <summary>The model's id in the API (its file name without the extension, e.g. stories260K).</summary>
    public string Id { get; }

    public long Created { get; }

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync().ConfigureAwait(false);
        _kernels.Dispose();
        Model.Dispose();
    }
}
