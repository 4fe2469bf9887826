using System.CommandLine;
using Tilt.Engine.Heads;
using Tilt.Engine.IO;

namespace Tilt.Cli.Commands;

/// <summary><c>tilt head import</c>: a Hugging Face reward model's score head as a head file for <c>rm:</c>.</summary>
internal static class HeadCommand
{
    public static Command Create(CliConsole console)
    {
        var command = new Command("head", "Work with head files (docs/head-file.md).");
        command.Subcommands.Add(Import(console));
        return command;
    }

    private static Command Import(CliConsole console)
    {
        var safetensors = new Option<string>("--safetensors") { Description = "Hugging Face safetensors file holding the score head.", Required = true };
        var tensor = new Option<string>("--tensor") { Description = "Weight tensor, [hidden] or [labels, hidden]: e.g. score.weight or v_head.summary.weight.", Required = true };
        var bias = new Option<string?>("--bias-tensor") { Description = "Bias tensor ([labels]); default: no bias, as Hugging Face's sequence-classification score has none." };
        var label = new Option<int?>("--label") { Description = "Row of a [labels, hidden] weight to keep (required when there are several)." };
        var model = new Option<string>("--model", "-m") { Description = "The backbone converted to GGUF (convert_hf_to_gguf.py); the head is bound to its fingerprint.", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Head file to write (atomically).", Required = true };

        var command = new Command("import", "Import a reward model's score head from safetensors as a linear reward head on a GGUF backbone (for rm:BACKBONE,HEAD).");
        foreach (var o in new Option[] { safetensors, tensor, bias, label, model, output }) command.Options.Add(o);
        command.SetAction((parse, cancellationToken) => console.GuardAsync(async () =>
        {
            await Task.Yield();
            string outPath = AtomicFile.CheckTarget(parse.GetValue(output)!);
            var head = HeadImport.FromSafetensors(new HeadImportOptions
            {
                SafetensorsPath = parse.GetValue(safetensors)!,
                Tensor = parse.GetValue(tensor)!,
                BiasTensor = parse.GetValue(bias),
                Label = parse.GetValue(label),
                BackbonePath = parse.GetValue(model)!,
            });
            head.Write(outPath, cancellationToken);
            console.Error.WriteLine($"{head.Header.Description}: d={head.Header.HiddenSize}, bias {head.Weights[^1]}");
            console.Out.WriteLine(Path.GetFullPath(outPath));
            return 0;
        }));
        return command;
    }
}
