using System.Text;

namespace Tilt.Engine.Models.Gguf;

/// <summary>
/// The parts of a GGUF file's header that tell whether the file is whole: magic, version, metadata,
/// tensor descriptors and the data section's extent. llama.cpp checks some of this too, but reports
/// it only through its log; reading it here gives the user one clear message naming the file and the
/// problem before any native code touches it.
/// </summary>
internal sealed class GgufHeader
{
    private const uint Magic = 0x46554747; // "GGUF" little-endian
    private const int DefaultAlignment = 32;

    public required uint Version { get; init; }
    public required IReadOnlyDictionary<string, object> Metadata { get; init; }
    public required IReadOnlyList<GgufTensorInfo> Tensors { get; init; }

    /// <summary>Absolute file offset where tensor data begins.</summary>
    public required long DataOffset { get; init; }

    /// <summary>Reads and validates the header; throws <see cref="ModelLoadException"/> naming the problem.</summary>
    public static GgufHeader Read(string path)
    {
        if (IO.InputFile.Problem(path, "model file") is { } problem)
            throw new ModelLoadException(path, problem);
        long fileLength = new FileInfo(path).Length;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: false);
            if (fileLength < 24)
                throw new ModelLoadException(path, $"not a GGUF file: {fileLength} bytes is shorter than a GGUF header");
            uint magic = reader.ReadUInt32();
            if (magic != Magic)
                throw new ModelLoadException(path, "not a GGUF file: the first four bytes are not 'GGUF'");
            uint version = reader.ReadUInt32();
            if (version is < 2 or > 3)
                throw new ModelLoadException(path, $"unsupported GGUF version {version} (supported: 2, 3)");
            ulong tensorCount = reader.ReadUInt64();
            ulong metadataCount = reader.ReadUInt64();
            // Bounds keep a corrupt count from turning into a huge allocation.
            if (tensorCount > 1_000_000 || metadataCount > 1_000_000)
                throw new ModelLoadException(path, $"corrupt GGUF header: {tensorCount} tensors, {metadataCount} metadata entries");

            var metadata = new Dictionary<string, object>((int)metadataCount, StringComparer.Ordinal);
            for (ulong i = 0; i < metadataCount; i++)
            {
                string key = ReadString(reader, fileLength);
                var type = (GgufValueType)reader.ReadUInt32();
                metadata[key] = ReadValue(reader, type, fileLength, depth: 0);
            }

            var tensors = new List<GgufTensorInfo>((int)tensorCount);
            for (ulong i = 0; i < tensorCount; i++)
            {
                string name = ReadString(reader, fileLength);
                uint dimCount = reader.ReadUInt32();
                if (dimCount is 0 or > 8)
                    throw new ModelLoadException(path, $"corrupt GGUF tensor '{name}': {dimCount} dimensions");
                var dims = new long[dimCount];
                for (int d = 0; d < dimCount; d++) dims[d] = checked((long)reader.ReadUInt64());
                uint type = reader.ReadUInt32();
                ulong offset = reader.ReadUInt64();
                tensors.Add(new GgufTensorInfo(name, dims, type, checked((long)offset)));
            }

            long alignment = metadata.TryGetValue("general.alignment", out var a) ? Convert.ToInt64(a) : DefaultAlignment;
            if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
                throw new ModelLoadException(path, $"corrupt GGUF header: general.alignment = {alignment} is not a power of two");
            long dataOffset = (stream.Position + alignment - 1) / alignment * alignment;

            foreach (var t in tensors)
            {
                long start = dataOffset + t.Offset;
                long? size = t.ByteSize;
                long end = start + (size ?? 0);
                if (start > fileLength || end > fileLength)
                    throw new ModelLoadException(path,
                        $"truncated GGUF file: tensor '{t.Name}' needs bytes up to {end} but the file has {fileLength}");
            }

            return new GgufHeader { Version = version, Metadata = metadata, Tensors = tensors, DataOffset = dataOffset };
        }
        catch (EndOfStreamException e)
        {
            throw new ModelLoadException(path, $"truncated GGUF file: the header ends early ({fileLength} bytes)", e);
        }
        catch (InvalidDataException e)
        {
            throw new ModelLoadException(path, $"corrupt GGUF header: {e.Message}", e);
        }
        catch (OverflowException e)
        {
            throw new ModelLoadException(path, "corrupt GGUF header: a size or offset is out of range", e);
        }
        catch (IOException e) when (e is not EndOfStreamException)
        {
            throw new ModelLoadException(path, $"cannot read the model file: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ModelLoadException(path, $"cannot read the model file: {e.Message}", e);
        }
    }

    /// <summary>A metadata value as a string, or null.</summary>
    public string? GetString(string key) => Metadata.TryGetValue(key, out var v) ? v as string : null;

    /// <summary>A numeric metadata value, or null.</summary>
    public long? GetInteger(string key) => Metadata.TryGetValue(key, out var v)
        ? v switch
        {
            ulong u => (long)Math.Min(u, long.MaxValue), // a corrupt huge value stays huge (and is refused) instead of overflowing
            byte or sbyte or short or ushort or int or uint or long => Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture),
            _ => null,
        }
        : null;

    private static string ReadString(BinaryReader reader, long fileLength)
    {
        ulong length = reader.ReadUInt64();
        if (length > (ulong)(fileLength - reader.BaseStream.Position))
            throw new EndOfStreamException();
        return Encoding.UTF8.GetString(reader.ReadBytes((int)length));
    }

    private static object ReadValue(BinaryReader reader, GgufValueType type, long fileLength, int depth) => type switch
    {
        GgufValueType.UInt8 => reader.ReadByte(),
        GgufValueType.Int8 => reader.ReadSByte(),
        GgufValueType.UInt16 => reader.ReadUInt16(),
        GgufValueType.Int16 => reader.ReadInt16(),
        GgufValueType.UInt32 => reader.ReadUInt32(),
        GgufValueType.Int32 => reader.ReadInt32(),
        GgufValueType.Float32 => reader.ReadSingle(),
        GgufValueType.Bool => reader.ReadByte() != 0,
        GgufValueType.String => ReadString(reader, fileLength),
        GgufValueType.UInt64 => reader.ReadUInt64(),
        GgufValueType.Int64 => reader.ReadInt64(),
        GgufValueType.Float64 => reader.ReadDouble(),
        GgufValueType.Array => ReadArray(reader, fileLength, depth),
        _ => throw new InvalidDataException($"unknown GGUF metadata type {(uint)type}"),
    };

    private static object ReadArray(BinaryReader reader, long fileLength, int depth)
    {
        if (depth > 4) throw new InvalidDataException("GGUF metadata arrays nested too deeply");
        var elementType = (GgufValueType)reader.ReadUInt32();
        ulong count = reader.ReadUInt64();
        if (count > (ulong)fileLength) throw new EndOfStreamException();
        var items = new object[count];
        for (ulong i = 0; i < count; i++) items[i] = ReadValue(reader, elementType, fileLength, depth + 1);
        return items;
    }
}

/// <summary>One tensor descriptor: its ggml type and its offset relative to the data section.</summary>
internal sealed record GgufTensorInfo(string Name, long[] Dimensions, uint GgmlType, long Offset)
{
    public long ElementCount => Dimensions.Aggregate(1L, (a, b) => checked(a * b));

    /// <summary>Bytes of data, or null for a ggml type this reader does not know the block size of.</summary>
    public long? ByteSize => GgmlTypeSizes.TryGet(GgmlType, out int blockSize, out int blockBytes)
        ? checked(ElementCount / blockSize * blockBytes)
        : null;
}

/// <summary>Block sizes of the ggml tensor types (ggml.h's type table).</summary>
internal static class GgmlTypeSizes
{
    public static bool TryGet(uint type, out int blockSize, out int blockBytes)
    {
        (blockSize, blockBytes) = type switch
        {
            0 => (1, 4),      // F32
            1 => (1, 2),      // F16
            2 => (32, 18),    // Q4_0
            3 => (32, 20),    // Q4_1
            6 => (32, 22),    // Q5_0
            7 => (32, 24),    // Q5_1
            8 => (32, 34),    // Q8_0
            9 => (32, 36),    // Q8_1
            10 => (256, 84),  // Q2_K
            11 => (256, 110), // Q3_K
            12 => (256, 144), // Q4_K
            13 => (256, 176), // Q5_K
            14 => (256, 210), // Q6_K
            15 => (256, 292), // Q8_K
            24 => (1, 1),     // I8
            25 => (1, 2),     // I16
            26 => (1, 4),     // I32
            27 => (1, 8),     // I64
            28 => (1, 8),     // F64
            30 => (1, 2),     // BF16
            _ => (0, 0),
        };
        return blockSize != 0;
    }
}

internal enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}
