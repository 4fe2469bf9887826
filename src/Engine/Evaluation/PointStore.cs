using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Tilt.Engine.IO;

namespace Tilt.Engine.Evaluation;

/// <summary>
/// points.json and points.csv of an evaluation folder. Every finished point is written at once (atomically), so
/// an interrupted sweep keeps what it finished and a re-run skips it.
/// </summary>
public sealed class PointStore
{
    public const string JsonFile = "points.json";
    public const string CsvFile = "points.csv";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    // Scalar properties only: the per-prompt rewards live in points.json.
    private static readonly PropertyInfo[] Columns = typeof(EvaluatedPoint).GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => IsScalar(Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType)).ToArray();

    private static bool IsScalar(Type type) => type == typeof(string) || type == typeof(int) || type == typeof(double) || type.IsEnum;

    private readonly string _directory;
    private readonly List<EvaluatedPoint> _points;

    private PointStore(string directory, List<EvaluatedPoint> points)
    {
        _directory = directory;
        _points = points;
    }

    public IReadOnlyList<EvaluatedPoint> Points => _points;

    /// <summary>
    /// Opens an evaluation folder for <paramref name="identity"/>, reading the points a previous run finished with the
    /// same settings. A folder made with other settings is refused with an error naming the first setting that
    /// differs, unless <paramref name="startAfresh"/>, which removes its points first. A corrupt points or settings
    /// file is an error, never overwritten.
    /// </summary>
    /// <exception cref="TiltException">The folder cannot be used; the message names the file and the problem.</exception>
    public static PointStore Open(string directory, EvaluationIdentity identity, bool startAfresh = false)
    {
        ArgumentNullException.ThrowIfNull(identity);
        directory = AtomicFile.EnsureFolder(directory);
        string points = Path.Combine(directory, JsonFile), settings = Path.Combine(directory, EvaluationIdentity.FileName);
        if (startAfresh)
        {
            foreach (string file in new[] { points, Path.Combine(directory, CsvFile), settings })
                Delete(file);
        }

        if (File.Exists(settings))
        {
            var previous = EvaluationIdentity.Read(settings);
            if (identity.FirstDifference(previous) is { } difference)
                throw new TiltException($"{directory}: was evaluated with other settings ({difference}); use --force to start afresh, or another --out");
        }
        else if (File.Exists(points))
        {
            throw new TiltException($"{points}: has no {EvaluationIdentity.FileName} beside it, so its settings are unknown; use --force to start afresh, or another --out");
        }
        else
        {
            identity.Write(settings);
        }

        return new PointStore(directory, File.Exists(points) ? ReadPoints(points) : []);
    }

    /// <summary>Opens a folder an earlier run made, with the settings its settings.json records (to read or extend it).</summary>
    /// <exception cref="TiltException">The folder has no readable settings file, or its points are corrupt.</exception>
    public static PointStore OpenExisting(string directory)
    {
        string settings = Path.Combine(Path.GetFullPath(directory), EvaluationIdentity.FileName);
        if (!File.Exists(settings)) throw new TiltException($"{settings}: not found; {directory} is not an evaluation folder");
        return Open(directory, EvaluationIdentity.Read(settings));
    }

    private static List<EvaluatedPoint> ReadPoints(string path)
    {
        List<EvaluatedPoint>? read;
        try
        {
            read = JsonSerializer.Deserialize<List<EvaluatedPoint>>(InputFile.ReadAllBytes(path, "evaluation file"), Json);
        }
        catch (JsonException e)
        {
            throw new TiltException($"{path}: cannot resume from a corrupt points file ({e.Message}); use --force to start afresh", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{path}: cannot read: {e.Message}", e);
        }
        if (read is null || read.Any(p => p is null || string.IsNullOrEmpty(p.Id)))
            throw new TiltException($"{path}: cannot resume from a corrupt points file (a null list, point or id); use --force to start afresh");
        if (read.GroupBy(p => p.Id).FirstOrDefault(g => g.Count() > 1) is { } duplicate)
            throw new TiltException($"{path}: cannot resume from a corrupt points file (point '{duplicate.Key}' appears twice); use --force to start afresh");
        // Points saved before KL methods were spelled as everywhere else (BestOfNEstimate -> best_of_n_estimate).
        return [.. read.Select(p => p with { KlMethod = EvaluatedPoint.Respell(p.KlMethod) })];
    }

    private static void Delete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{path}: cannot remove it to start afresh: {e.Message}", e);
        }
    }

    public bool Contains(string id) => _points.Any(p => p.Id == id);

    /// <summary>Adds (or replaces) a point and rewrites both files.</summary>
    public void Add(EvaluatedPoint point)
    {
        _points.RemoveAll(p => p.Id == point.Id);
        _points.Add(point);
        AtomicFile.WriteAllText(Path.Combine(_directory, JsonFile), JsonSerializer.Serialize(_points, Json));
        AtomicFile.WriteAllText(Path.Combine(_directory, CsvFile), ToCsv(_points));
    }

    public static string ToCsv(IEnumerable<EvaluatedPoint> points)
    {
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(',', Columns.Select(c => JsonNamingPolicy.CamelCase.ConvertName(c.Name))));
        foreach (var p in points)
            sb.AppendLine(string.Join(',', Columns.Select(c => Cell(c.GetValue(p)))));
        return sb.ToString();
    }

    /// <summary>Parses a CSV written by <see cref="ToCsv"/>.</summary>
    public static List<EvaluatedPoint> FromCsv(string csv)
    {
        var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        var header = lines[0].Split(',');
        var result = new List<EvaluatedPoint>();
        foreach (string line in lines.Skip(1))
        {
            var cells = SplitCsv(line);
            var values = new Dictionary<string, object?>();
            for (int i = 0; i < header.Length; i++)
            {
                var column = Columns.First(c => JsonNamingPolicy.CamelCase.ConvertName(c.Name) == header[i]);
                values[column.Name] = Parse(cells[i], column.PropertyType);
            }
            // Round-trip through JSON so required members are set the supported way.
            string json = JsonSerializer.Serialize(values.ToDictionary(kv => JsonNamingPolicy.CamelCase.ConvertName(kv.Key), kv => kv.Value), Json);
            var point = JsonSerializer.Deserialize<EvaluatedPoint>(json, Json)!;
            result.Add(point with { KlMethod = EvaluatedPoint.Respell(point.KlMethod) });
        }
        return result;
    }

    private static string Cell(object? value) => value switch
    {
        null => "",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        string s when s.IndexOfAny([',', '"', '\n']) >= 0 => "\"" + s.Replace("\"", "\"\"") + "\"",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static object? Parse(string cell, Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        if (underlying is not null) return cell.Length == 0 ? null : Parse(cell, underlying);
        if (type == typeof(string)) return cell;
        if (type == typeof(int)) return int.Parse(cell, CultureInfo.InvariantCulture);
        if (type == typeof(double)) return double.Parse(cell, CultureInfo.InvariantCulture);
        if (type.IsEnum) return Enum.Parse(type, cell);
        throw new NotSupportedException($"column type {type}");
    }

    private static string[] SplitCsv(string line)
    {
        var cells = new List<string>();
        var cell = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { cell.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else cell.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { cells.Add(cell.ToString()); cell.Clear(); }
            else cell.Append(c);
        }
        cells.Add(cell.ToString());
        return cells.ToArray();
    }

}
