using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using Tilt.Engine.IO;

namespace Tilt.Engine.Heads;

/// <summary>One tensor's entry in a safetensors header: element type, shape and byte range within the data section.</summary>
/// <param name="Name">The tensor's name, e.g. <c>score.weight</c>.</param>
/// <param name="DataType">The header's dtype string (F32, F16, BF16, I64, ...).</param>
/// <param name="Shape">Dimensions, outermost first (a PyTorch Linear weight is [out_features, in_features]).</param>
/// <param name="Begin">First byte of the data, relative to the end of the header.</param>
/// <param name="End">One past the last byte, relative to the end of the header.</param>
public sealed record SafetensorsTensor(string Name, string DataType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements (1 for a scalar of shape []).</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));

    /// <summary>"[2, 64]".</summary>
    public string ShapeText => "[" + string.Join(", ", Shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}

/// <summary>
/// A Hugging Face safetensors file opened for reading single tensors: 8-byte little-endian header length N, N bytes of
/// UTF-8 JSON <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}</c>, then the raw data,
/// little-endian. Only the header is read when opening; a tensor's bytes are read when asked for. Every offset is
/// checked against the file's length and every size against its dtype, so a hostile file fails with a message rather
/// than a huge allocation or a read past the end.
/// </summary>
public sealed class SafetensorsFile
{
    /// <summary>
    /// The largest header read: 100 MB, the limit of the reference implementation (a header holds names and shapes
    /// only, a few kB even for a model of thousands of tensors).
    /// </summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>The largest tensor converted to floats: a head is hidden size x labels values, far below this.</summary>
    public const long MaxElements = 1L << 28;

    private readonly Dictionary<string, SafetensorsTensor> _tensors;

    private SafetensorsFile(string path, long dataStart, Dictionary<string, SafetensorsTensor> tensors)
    {
        Path = path;
        DataStart = dataStart;
        _tensors = tensors;
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>Byte offset of the data section (8 + header length).</summary>
    public long DataStart { get; }

    /// <summary>Every tensor of the header, by name in ordinal order.</summary>
    public IReadOnlyList<SafetensorsTensor> Tensors => _tensors.Values.OrderBy(t => t.Name, StringComparer.Ordinal).ToArray();

    /// <summary>Reads and validates the header.</summary>
    /// <exception cref="TiltException">A missing or non-regular file, a header length outside the file or above the
    /// bound, malformed JSON, or an entry whose offsets or size do not fit; each message names the file.</exception>
    public static SafetensorsFile Open(string path)
    {
        string full = InputFile.Check(path, "safetensors file", long.MaxValue);
        try
        {
            using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            long fileLength = stream.Length;
            Span<byte> prefix = stackalloc byte[8];
            if (fileLength < 8 || stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8)
                throw new TiltException($"{full}: not a safetensors file: {fileLength} bytes is shorter than the 8-byte header length");
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength < 2 || headerLength > (ulong)MaxHeaderBytes || (long)headerLength > fileLength - 8)
                throw new TiltException($"{full}: not a safetensors file or corrupt: the header length is {headerLength} bytes, " +
                                        $"but the file has {fileLength - 8} bytes after it (and a header may have at most {MaxHeaderBytes:N0})");
            var header = new byte[(int)headerLength];
            stream.ReadExactly(header);
            long dataStart = 8 + (long)headerLength;
            return new SafetensorsFile(full, dataStart, ParseHeader(full, header, fileLength - dataStart));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{full}: cannot read the safetensors file: {e.Message}", e);
        }
    }

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="TiltException">No such tensor; the message lists the file's tensors with their shapes.</exception>
    public SafetensorsTensor Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_tensors.TryGetValue(name, out var tensor)) return tensor;
        const int Listed = 40;
        var names = Tensors.Select(t => $"{t.Name} {t.DataType} {t.ShapeText}").ToList();
        string list = names.Count == 0 ? "(none)" : string.Join(", ", names.Take(Listed)) + (names.Count > Listed ? $", ... ({names.Count} in all)" : "");
        throw new TiltException($"{Path}: no tensor '{name}'; the file's tensors are {list}");
    }

    /// <summary>
    /// The tensor's values as float32, row-major. F32 is read exactly, F16 and BF16 convert exactly (every half and
    /// bfloat16 value is a float32 value); F64 is rounded to the nearest float32.
    /// </summary>
    /// <exception cref="TiltException">Another dtype, too many elements, or a read error.</exception>
    public float[] ReadFloats(SafetensorsTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        int size = ElementSize(tensor.DataType)
                   ?? throw new TiltException($"{Path}: tensor '{tensor.Name}' is {tensor.DataType}; a head must be F32, F16, BF16 or F64");
        long count = tensor.ElementCount;
        if (count > MaxElements)
            throw new TiltException($"{Path}: tensor '{tensor.Name}' {tensor.ShapeText} has {count:N0} elements, more than a head may have ({MaxElements:N0})");
        var bytes = new byte[checked((int)(count * size))];
        try
        {
            using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            if (stream.Length < DataStart + tensor.End)
                throw new TiltException($"{Path}: the file shrank to {stream.Length} bytes while tensor '{tensor.Name}' ends at byte {DataStart + tensor.End}");
            stream.Position = DataStart + tensor.Begin;
            stream.ReadExactly(bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TiltException($"{Path}: cannot read tensor '{tensor.Name}': {e.Message}", e);
        }
        var values = new float[count];
        for (int i = 0; i < values.Length; i++)
        {
            var b = bytes.AsSpan(i * size, size);
            values[i] = tensor.DataType switch
            {
                "F32" => BinaryPrimitives.ReadSingleLittleEndian(b),
                "F16" => (float)BinaryPrimitives.ReadHalfLittleEndian(b),
                "BF16" => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b) << 16),
                _ => (float)BinaryPrimitives.ReadDoubleLittleEndian(b),
            };
        }
        return values;
    }

    /// <summary>Bytes per element of the float dtypes a head can be read from; null for any other dtype.</summary>
    private static int? ElementSize(string dataType) => dataType switch
    {
        "F32" => 4,
        "F16" or "BF16" => 2,
        "F64" => 8,
        _ => null,
    };

    /// <summary>Bytes per element of every dtype the format defines, so sizes of tensors we never read are checked too.</summary>
    private static int? AnyElementSize(string dataType) => dataType switch
    {
        "BOOL" or "U8" or "I8" or "F8_E5M2" or "F8_E4M3" => 1,
        "U16" or "I16" or "F16" or "BF16" => 2,
        "U32" or "I32" or "F32" => 4,
        "U64" or "I64" or "F64" => 8,
        _ => null,
    };

    private static Dictionary<string, SafetensorsTensor> ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new TiltException($"{path}: corrupt safetensors header (not JSON): {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new TiltException($"{path}: corrupt safetensors header: expected a JSON object of tensors, got {doc.RootElement.ValueKind}");
            var tensors = new Dictionary<string, SafetensorsTensor>(StringComparer.Ordinal);
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__") continue; // free-form string map (format, framework): nothing to check
                tensors[entry.Name] = ParseEntry(path, entry, dataLength);
            }
            return tensors;
        }
    }

    private static SafetensorsTensor ParseEntry(string path, JsonProperty entry, long dataLength)
    {
        string Where(string field) => $"{path}: corrupt safetensors header at '{entry.Name}'.{field}";
        var value = entry.Value;
        if (value.ValueKind != JsonValueKind.Object)
            throw new TiltException($"{path}: corrupt safetensors header: '{entry.Name}' is {value.ValueKind}, expected an object with dtype, shape and data_offsets");
        if (!value.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String)
            throw new TiltException($"{Where("dtype")}: missing or not a string");
        string dataType = dtype.GetString()!;
        int elementSize = AnyElementSize(dataType) ?? throw new TiltException($"{Where("dtype")}: unknown dtype '{dataType}'");
        if (!value.TryGetProperty("shape", out var shapeJson) || shapeJson.ValueKind != JsonValueKind.Array)
            throw new TiltException($"{Where("shape")}: missing or not an array");
        var shape = new long[shapeJson.GetArrayLength()];
        int k = 0;
        foreach (var d in shapeJson.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw new TiltException($"{Where("shape")}: {d} is not a dimension (a whole number >= 0)");
            shape[k++] = dim;
        }
        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end))
            throw new TiltException($"{Where("data_offsets")}: missing or not [begin, end]");
        if (begin < 0 || end < begin || end > dataLength)
            throw new TiltException($"{Where("data_offsets")}: [{begin}, {end}] does not fit the {dataLength} data bytes of the file (truncated?)");
        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * elementSize);
        }
        catch (OverflowException)
        {
            throw new TiltException($"{Where("shape")}: the shape's size overflows");
        }
        if (end - begin != expected)
            throw new TiltException($"{Where("data_offsets")}: {end - begin} bytes for a {dataType} tensor of shape [{string.Join(", ", shape)}], expected {expected}");
        return new SafetensorsTensor(entry.Name, dataType, shape, begin, end);
    }
}
