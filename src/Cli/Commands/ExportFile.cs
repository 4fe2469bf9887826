using System.Text.Json.Nodes;

namespace Tilt.Cli.Commands;

/// <summary>
/// The export file: a header line, then one line per finished prompt, appended whole and flushed. Opening an existing
/// file checks its header against the settings, cuts a torn last line (a crash mid-write) and collects the prompts done.
/// </summary>
internal sealed class ExportFile : IDisposable
{
    /// <summary>The format name in the header line.</summary>
    public const string Format = "tilt-export/1";

    private readonly FileStream _stream;

    private ExportFile(FileStream stream, HashSet<int> done)
    {
        _stream = stream;
        Done = done;
    }

    public HashSet<int> Done { get; }

    public static ExportFile Open(string path, JsonObject settings, ModelInfo model, IReadOnlyList<string> prompts)
    {
        var done = new HashSet<int>();
        bool exists = File.Exists(path) && new FileInfo(path).Length > 0;
        var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        try
        {
            if (exists)
            {
                long keep = ReadExisting(stream, path, settings, prompts, done);
                stream.SetLength(keep);
                stream.Position = keep;
            }
            else
            {
                var header = new JsonObject
                {
                    ["type"] = "header",
                    ["format"] = Format,
                    ["settings"] = settings.DeepClone(),
                    ["model"] = new JsonObject { ["path"] = model.Path, ["fingerprint"] = model.Fingerprint, ["description"] = model.Description },
                    ["prompts"] = prompts.Count,
                    ["created"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
                };
                stream.SetLength(0);
                WriteLine(stream, header.ToJsonString(CliJson.Options));
            }
            return new ExportFile(stream, done);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Checks the header and collects finished prompts; returns the length of the whole lines to keep.</summary>
    private static long ReadExisting(FileStream stream, string path, JsonObject settings, IReadOnlyList<string> prompts, HashSet<int> done)
    {
        var bytes = new byte[stream.Length];
        stream.Position = 0;
        stream.ReadExactly(bytes);
        int end = Array.LastIndexOf(bytes, (byte)'\n') + 1; // a line without its '\n' was torn by a crash: dropped
        string[] lines = Encoding.UTF8.GetString(bytes, 0, end).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0) throw new TiltException($"{path}: has no complete header line; remove it or choose another --out");
        JsonNode? header;
        try
        {
            header = JsonNode.Parse(lines[0]);
        }
        catch (JsonException e)
        {
            throw new TiltException($"{path}: line 1 is not a {Format} header ({e.Message}); remove it or choose another --out");
        }
        if (header?["type"]?.GetValue<string>() != "header" || header["format"]?.GetValue<string>() != Format || header["settings"] is not JsonObject old)
            throw new TiltException($"{path}: line 1 is not a {Format} header; remove it or choose another --out");
        foreach (var (key, value) in settings)
        {
            // Files from before kvCache was recorded were all written with the F16 cache.
            string mine = value?.ToJsonString() ?? "null", theirs = old[key]?.ToJsonString() ?? (key == "kvCache" ? "\"f16\"" : "null");
            if (mine != theirs)
                throw new TiltException($"{path} was written with other settings ({key}: {theirs} in the file, {mine} now); use another --out to keep both, or remove the file");
        }
        for (int i = 1; i < lines.Length; i++)
        {
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(lines[i]);
            }
            catch (JsonException e)
            {
                throw new TiltException($"{path}: line {i + 1} is not JSON ({e.Message})");
            }
            int index = node?["promptIndex"]?.GetValue<int>() ?? -1;
            string? prompt = node?["prompt"]?.GetValue<string>();
            if (index < 0 || index >= prompts.Count || prompt != prompts[index])
                throw new TiltException($"{path}: line {i + 1} is prompt {index}, which is not prompt {index} of the prompt file; the prompt file changed: use another --out");
            done.Add(index);
        }
        return end;
    }

    /// <summary>Appends one whole line and flushes it to disk before the next (a crash leaves whole lines or a torn last one).</summary>
    public void Append(string line) => WriteLine(_stream, line);

    private static void WriteLine(FileStream stream, string line)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(line + "\n");
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }

    public void Dispose() => _stream.Dispose();
}
