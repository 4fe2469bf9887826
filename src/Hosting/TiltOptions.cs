using Tilt.Engine.Decoding;
using Tilt.Engine.Models;
using Tilt.Kernels;

namespace Tilt.Hosting;

/// <summary>
/// Settings of <c>services.AddTilt(...)</c>: the models to load, one <see cref="DecodingEngine"/> each. Bindable from
/// configuration (section <see cref="SectionName"/>: <c>Tilt:Models:NAME:Path</c>, <c>Tilt:Models:NAME:MaxSequences</c>, ...).
/// Checked when the host starts; an error names the setting (<c>Tilt:Models:stories:MaxSequences must be ...</c>).
/// </summary>
public sealed class TiltOptions
{
    /// <summary>The configuration section these settings are usually bound from.</summary>
    public const string SectionName = "Tilt";

    /// <summary>The models to load, by name (names compare case-insensitively). At least one.</summary>
    public Dictionary<string, TiltModelOptions> Models { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The model <see cref="ITiltEngines.Default"/> returns. Defaults to null: the only configured model (with several,
    /// <see cref="ITiltEngines.Default"/> then asks for a name).
    /// </summary>
    public string? DefaultModel { get; set; }

    /// <summary>
    /// How long stopping the host lets running and queued requests finish before cancelling them
    /// (<see cref="DecodingEngine.StopAsync"/>). 0..10 minutes. Defaults to 10 seconds.
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A native llama library to use instead of the bundled CPU build of LLamaSharp.Backend.Cpu (for example a CUDA build of
    /// the same llama.cpp commit). Process-wide: it must be set before any model loads. Defaults to null (bundled CPU build).
    /// </summary>
    public string? NativeLibraryPath { get; set; }

    /// <summary>
    /// When true, the host's start does not wait for the models: they load one after another in the background while the
    /// host runs (an HTTP server answers its probes meanwhile). Until a model is loaded its requests get
    /// <see cref="InvalidOperationException"/> and health is Unhealthy; <see cref="ITiltEngines.WhenLoaded"/> completes
    /// once every model is loaded, or faults with the first model that could not be. Defaults to false: the start waits,
    /// and a model that cannot be loaded fails it.
    /// </summary>
    public bool LoadInBackground { get; set; }

    /// <summary>Adds (or replaces) a model named <paramref name="name"/> read from <paramref name="path"/>; returns its settings.</summary>
    public TiltModelOptions AddModel(string name, string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var model = new TiltModelOptions { Path = path };
        Models[name] = model;
        return model;
    }
}

/// <summary>One model and the capacity of its engine (<see cref="EngineOptions"/>).</summary>
public sealed class TiltModelOptions
{
    /// <summary>
    /// The GGUF file (or tabular model JSON) to load. Required unless <see cref="ModelFactory"/> is set; must exist when
    /// the host starts.
    /// </summary>
    public string? Path { get; set; }

    /// <summary>
    /// Creates the model instead of loading <see cref="Path"/>: for a model your code builds (your own
    /// <see cref="ILanguageModel"/>, a model loaded with other options). Called once, on the thread that loads, when the
    /// host starts; the engine owns what it returns and disposes it when the host stops. Defaults to null (load Path).
    /// </summary>
    public Func<ILanguageModel>? ModelFactory { get; set; }

    /// <summary>
    /// Other names the model answers to in <see cref="ITiltEngines"/> (case-insensitive, like model names), e.g. the
    /// names clients of an OpenAI-compatible server send. An alias may not be a model's name or another model's alias.
    /// Defaults to none.
    /// </summary>
    public List<string> Aliases { get; } = [];

    /// <summary>Sequences the engine holds at once over all its requests (best-of-n with n = 8 takes 8). 1..256. Defaults to 64.</summary>
    public int MaxSequences { get; set; } = 64;

    /// <summary>Tokens one sequence may hold: prompt + output + 1. 2..1048576. Defaults to 512.</summary>
    public int MaxSequenceLength { get; set; } = 512;

    /// <summary>Requests that may wait for capacity; one more is refused with <see cref="EngineBusyException"/>. 0..100000. Defaults to 256.</summary>
    public int MaxQueuedRequests { get; set; } = 256;

    /// <summary>Prompts whose KV the engine keeps in otherwise free sequences. 0..256. Defaults to 8.</summary>
    public int PromptCacheEntries { get; set; } = 8;

    /// <summary>CPU threads for llama.cpp; null = every physical core. Defaults to null.</summary>
    public int? Threads { get; set; }

    /// <summary>KV cache element type (F32 makes outputs independent of what shares the batch). Defaults to F16.</summary>
    public KvCacheType KvCacheType { get; set; } = KvCacheType.F16;

    /// <summary>Where the step kernels run (<see cref="KernelBackend.Auto"/> takes the SIMD CPU backend, see StepKernels.Create). Defaults to Auto.</summary>
    public KernelBackend Backend { get; set; } = KernelBackend.Auto;

    /// <summary>Layers to offload when the native library has a GPU. 0 or more. Defaults to all (999).</summary>
    public int GpuLayers { get; set; } = 999;

    /// <summary>The engine options these settings give (valid after <see cref="TiltOptionsValidator"/> passed).</summary>
    internal EngineOptions ToEngineOptions(string name) => new()
    {
        ModelName = name,
        MaxSequences = MaxSequences,
        MaxSequenceLength = MaxSequenceLength,
        MaxQueuedRequests = MaxQueuedRequests,
        PromptCacheEntries = PromptCacheEntries,
        Threads = Threads,
        KvCacheType = KvCacheType,
    };
}
