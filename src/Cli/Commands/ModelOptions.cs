using Tilt.Engine.Models.Gguf;
using Tilt.Engine.Models.Loading;

namespace Tilt.Cli.Commands;

/// <summary>Options every model-using command shares: which model, which native library, which kernels.</summary>
internal sealed class ModelOptions
{
    public Option<string?> Model { get; } = new("--model", "-m")
    {
        Description = $"GGUF file or tabular model JSON. Defaults to ${DefaultModel.EnvironmentVariable}, else ../shared/models/{DefaultModel.FileName}.",
    };

    public Option<string?> NativeLibrary { get; } = new("--native-lib")
    {
        Description = "Path of your own llama.cpp library (e.g. a CUDA build of the same commit) to use instead of the bundled CPU one.",
    };

    public Option<KernelBackend> Backend { get; } = new("--backend")
    {
        Description = "Step-kernel backend: Auto (CPU SIMD, also when a GPU is present: logits arrive in host memory, where it measured faster), Cpu, Cuda (forces the GPU).",
        DefaultValueFactory = _ => KernelBackend.Auto,
    };

    public Option<int?> Threads { get; } = new("--threads")
    {
        Description = "CPU threads for llama.cpp, 1..the logical CPUs (default: one per physical core).",
    };

    public Option<bool> Verbose { get; } = new("--verbose", "-v")
    {
        Description = "Print llama.cpp warnings and the backend choice to stderr.",
    };

    /// <summary>Adds the options to <paramref name="command"/>; <paramref name="model"/> false leaves --model to the command (serve's is repeatable).</summary>
    public void AddTo(Command command, bool model = true)
    {
        if (model) command.Options.Add(Model);
        command.Options.Add(NativeLibrary);
        command.Options.Add(Backend);
        command.Options.Add(Threads);
        command.Options.Add(Verbose);
    }

    /// <summary>--threads, checked: null (the default) or 1..the logical CPUs, else a user error naming the option.</summary>
    public int? GetThreads(ParseResult parse)
    {
        int? threads = parse.GetValue(Threads);
        return threads is { } t && CpuTopology.ThreadsProblem(t) is { } problem ? throw new TiltException($"--threads: {problem}") : threads;
    }

    public ILanguageModel LoadModel(ParseResult parse, CliConsole console)
    {
        bool verbose = parse.GetValue(Verbose);
        if (verbose) LlamaNative.Log = line => console.Error.WriteLine(line);
        string path = parse.GetValue(Model) ?? DefaultModel.Resolve();
        if (string.IsNullOrWhiteSpace(path)) throw new TiltException("--model is empty; give a .gguf file or a tabular model JSON");
        var model = LanguageModel.Load(path, new GgufLoadOptions { NativeLibraryPath = parse.GetValue(NativeLibrary) });
        if (verbose && model is GgufModel)
        {
            int? threads = GetThreads(parse);
            console.Error.WriteLine($"llama.cpp threads: {CpuTopology.Resolve(threads)} ({(threads is null ? "default, " : "")}" +
                $"{CpuTopology.PhysicalCores} physical cores, {CpuTopology.LogicalCpus} logical CPUs; {LlamaNative.OpenMpSettings})");
        }
        return model;
    }

    public IStepKernels CreateKernels(ParseResult parse, CliConsole console)
    {
        bool verbose = parse.GetValue(Verbose);
        try
        {
            return StepKernels.Create(parse.GetValue(Backend), verbose ? line => console.Error.WriteLine(line) : null);
        }
        catch (NotSupportedException e)
        {
            throw new Tilt.Engine.TiltException(e.Message, e);
        }
    }
}
