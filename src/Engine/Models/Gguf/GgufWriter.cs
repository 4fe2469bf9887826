using System.Buffers.Binary;
using System.Text;
using Tilt.Engine.IO;

namespace Tilt.Engine.Models.Gguf;

/// <summary>Element type of a written tensor.</summary>
public enum GgufTensorType
{
    F32 = 0,
    F16 = 1,

    /// <summary>Blocks of 32 values: one f16 scale (max |x| / 127) and 32 int8s.</summary>
    Q8_0 = 8,
}

/// <summary>
/// Writes GGUF version 3 files: metadata, tensor descriptors and tensor data streamed from a producer, so a
/// multi-gigabyte model never has to be held in memory. Tensors are written in the order they are added.
/// </summary>
internal sealed class GgufWriter
{
    private const int Alignment = 32;

    private readonly List<(string Key, GgufValueType Type, object Value)> _metadata = [];
    private readonly List<PendingTensor> _tensors = [];

    /// <summary>A tensor to write: its shape in ggml order (ne0 fastest) and a producer of its values in that order.</summary>
    private sealed record PendingTensor(string Name, long[] Dimensions, GgufTensorType Type, Action<Span<float>, long> Fill)
    {
        public long Elements => Dimensions.Aggregate(1L, (a, b) => a * b);

        public long Bytes => Type switch
        {
            GgufTensorType.F32 => Elements * 4,
            GgufTensorType.F16 => Elements * 2,
            GgufTensorType.Q8_0 => Elements / 32 * 34,
            _ => throw new ArgumentOutOfRangeException(nameof(Type)),
        };
    }

    public void Add(string key, string value) => _metadata.Add((key, GgufValueType.String, value));
    public void Add(string key, uint value) => _metadata.Add((key, GgufValueType.UInt32, value));
    public void Add(string key, int value) => _metadata.Add((key, GgufValueType.Int32, value));
    public void Add(string key, float value) => _metadata.Add((key, GgufValueType.Float32, value));
    public void Add(string key, bool value) => _metadata.Add((key, GgufValueType.Bool, value));
    public void Add(string key, string[] values) => _metadata.Add((key, GgufValueType.Array, (GgufValueType.String, (object)values)));
    public void Add(string key, float[] values) => _metadata.Add((key, GgufValueType.Array, (GgufValueType.Float32, (object)values)));
    public void Add(string key, int[] values) => _metadata.Add((key, GgufValueType.Array, (GgufValueType.Int32, (object)values)));

    /// <summary>
    /// Adds a tensor. <paramref name="fill"/> writes values of the chunk that starts at the given element index
    /// (chunks are a multiple of 32 elements, the last one shorter).
    /// </summary>
    public void AddTensor(string name, long[] dimensions, GgufTensorType type, Action<Span<float>, long> fill)
    {
        var tensor = new PendingTensor(name, dimensions, type, fill);
        if (type == GgufTensorType.Q8_0 && dimensions[0] % 32 != 0)
            throw new ArgumentException($"Q8_0 tensor '{name}' needs a first dimension divisible by 32, got {dimensions[0]}", nameof(dimensions));
        _tensors.Add(tensor);
    }

    /// <summary>
    /// Writes the file through <see cref="AtomicFile"/> (a temporary file renamed over the target), checking
    /// <paramref name="cancellationToken"/> between chunks so Ctrl+C stops a large write and leaves nothing behind.
    /// </summary>
    public void Write(string path, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        AtomicFile.Write(path, stream =>
        {
            var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            w.Write(0x46554747u); // "GGUF"
            w.Write(3u);
            w.Write((ulong)_tensors.Count);
            w.Write((ulong)_metadata.Count);
            foreach (var (key, type, value) in _metadata)
            {
                WriteString(w, key);
                w.Write((uint)type);
                WriteValue(w, type, value);
            }
            long offset = 0;
            foreach (var t in _tensors)
            {
                WriteString(w, t.Name);
                w.Write((uint)t.Dimensions.Length);
                foreach (long dim in t.Dimensions) w.Write((ulong)dim);
                w.Write((uint)t.Type);
                w.Write((ulong)offset);
                offset += Pad(t.Bytes);
            }
            w.Flush();
            PadTo(stream);

            long total = _tensors.Sum(t => t.Elements), done = 0;
            const int chunk = 1 << 16;
            var values = new float[chunk];
            var bytes = new byte[chunk / 32 * 34 + chunk * 4];
            foreach (var t in _tensors)
            {
                for (long start = 0; start < t.Elements; start += chunk)
                {
                    int n = (int)Math.Min(chunk, t.Elements - start);
                    cancellationToken.ThrowIfCancellationRequested();
                    t.Fill(values.AsSpan(0, n), start);
                    int written = Encode(values.AsSpan(0, n), t.Type, bytes);
                    stream.Write(bytes, 0, written);
                    done += n;
                }
                PadTo(stream);
                progress?.Report((double)done / total);
            }
        }, cancellationToken);
    }

    private static long Pad(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;

    private static void PadTo(Stream stream)
    {
        long pad = Pad(stream.Position) - stream.Position;
        for (long i = 0; i < pad; i++) stream.WriteByte(0);
    }

    private static int Encode(ReadOnlySpan<float> values, GgufTensorType type, Span<byte> output)
    {
        switch (type)
        {
            case GgufTensorType.F32:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(output[(4 * i)..], values[i]);
                return 4 * values.Length;
            case GgufTensorType.F16:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteHalfLittleEndian(output[(2 * i)..], (Half)values[i]);
                return 2 * values.Length;
            case GgufTensorType.Q8_0:
                int blocks = values.Length / 32, at = 0;
                for (int b = 0; b < blocks; b++)
                {
                    var block = values.Slice(32 * b, 32);
                    float amax = 0;
                    foreach (float v in block) amax = Math.Max(amax, Math.Abs(v));
                    float scale = amax / 127f;
                    float inverse = scale > 0 ? 1f / scale : 0f;
                    BinaryPrimitives.WriteHalfLittleEndian(output[at..], (Half)scale);
                    at += 2;
                    foreach (float v in block) output[at++] = (byte)(sbyte)Math.Clamp(MathF.Round(v * inverse), -127f, 127f);
                }
                return at;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.Array:
                var (elementType, items) = ((GgufValueType, object))value;
                w.Write((uint)elementType);
                switch (items)
                {
                    case string[] strings:
                        w.Write((ulong)strings.Length);
                        foreach (string s in strings) WriteString(w, s);
                        break;
                    case float[] floats:
                        w.Write((ulong)floats.Length);
                        foreach (float f in floats) w.Write(f);
                        break;
                    case int[] ints:
                        w.Write((ulong)ints.Length);
                        foreach (int i in ints) w.Write(i);
                        break;
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }
}
