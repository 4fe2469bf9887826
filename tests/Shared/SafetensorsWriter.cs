using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Tilt.Tests;

/// <summary>
/// A minimal safetensors writer for tests, written from the format's description (8-byte little-endian header length,
/// JSON header of {name: {dtype, shape, data_offsets}}, raw little-endian data), independent of the engine's reader.
/// </summary>
internal static class SafetensorsWriter
{
    /// <summary>One tensor to write: its values are stored in <paramref name="DataType"/> (F32, F16 or BF16, truncating for BF16).</summary>
    public sealed record Tensor(string Name, string DataType, long[] Shape, float[] Values);

    /// <summary>The bytes of a file holding <paramref name="tensors"/> in order, with a __metadata__ entry.</summary>
    public static byte[] Bytes(params Tensor[] tensors)
    {
        var data = new MemoryStream();
        var entries = new List<string> { "\"__metadata__\":{\"format\":\"pt\"}" };
        foreach (var t in tensors)
        {
            long begin = data.Length;
            foreach (float v in t.Values) data.Write(Encode(t.DataType, v));
            string shape = string.Join(",", t.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
            entries.Add($"\"{t.Name}\":{{\"dtype\":\"{t.DataType}\",\"shape\":[{shape}],\"data_offsets\":[{begin},{data.Length}]}}");
        }
        byte[] header = Encoding.UTF8.GetBytes("{" + string.Join(",", entries) + "}");
        var file = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        data.ToArray().CopyTo(file, 8 + header.Length);
        return file;
    }

    public static void Write(string path, params Tensor[] tensors) => File.WriteAllBytes(path, Bytes(tensors));

    /// <summary>Random values with a fixed seed, stored exactly in every dtype (multiples of 1/64 in [-2, 2)).</summary>
    public static float[] RandomValues(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (random.Next(256) - 128) / 64f)];
    }

    private static byte[] Encode(string dataType, float value)
    {
        switch (dataType)
        {
            case "F32":
                var f = new byte[4];
                BinaryPrimitives.WriteSingleLittleEndian(f, value);
                return f;
            case "F16":
                var h = new byte[2];
                BinaryPrimitives.WriteHalfLittleEndian(h, (Half)value);
                return h;
            case "BF16":
                var b = new byte[2];
                BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16));
                return b;
            default:
                throw new ArgumentException($"the test writer has no dtype {dataType}", nameof(dataType));
        }
    }
}
