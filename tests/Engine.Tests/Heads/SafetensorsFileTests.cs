using System.Buffers.Binary;
using Tilt.Engine.Heads;
using Tilt.Tests;
using static Tilt.Tests.SafetensorsWriter;

namespace Tilt.Engine.Tests.Heads;

/// <summary>The safetensors reader on files written by the tests' own writer, and on broken or hostile ones.</summary>
public sealed class SafetensorsFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tilt-safetensors-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteFile(byte[] bytes, string name = "head.safetensors")
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void F32_F16_and_BF16_values_are_read_exactly()
    {
        var random = new Random(5);
        float[] values = [.. Enumerable.Range(0, 37).Select(_ => (float)(random.NextDouble() * 8 - 4)), 1e-30f, -65504f, 0f];
        string path = WriteFile(Bytes(
            new Tensor("a.f32", "F32", [values.Length], values),
            new Tensor("b.f16", "F16", [values.Length], values),
            new Tensor("c.bf16", "BF16", [values.Length], values)));
        var file = SafetensorsFile.Open(path);

        Assert.Equal(["a.f32", "b.f16", "c.bf16"], file.Tensors.Select(t => t.Name));
        Assert.Equal(values, file.ReadFloats(file.Find("a.f32")));
        // Expected values computed independently of the reader: the writer stored (Half)v and v's top 16 bits.
        Assert.Equal(values.Select(v => (float)(Half)v), file.ReadFloats(file.Find("b.f16")));
        Assert.Equal(values.Select(v => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u)), file.ReadFloats(file.Find("c.bf16")));
        Assert.NotEqual(values, file.ReadFloats(file.Find("c.bf16"))); // BF16 rounding is visible, so the comparison can fail
    }

    [Fact]
    public void A_header_length_beyond_the_file_or_the_bound_is_refused_before_reading_it()
    {
        byte[] good = Bytes(new Tensor("w", "F32", [2], [1f, 2f]));
        byte[] tooLong = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(tooLong, (ulong)good.Length); // longer than what follows
        var e = Assert.Throws<TiltException>(() => SafetensorsFile.Open(WriteFile(tooLong)));
        Assert.Contains("header length", e.Message);

        byte[] hostile = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(hostile, ulong.MaxValue); // would be an 18 EB allocation if trusted
        Assert.Contains("header length", Assert.Throws<TiltException>(() => SafetensorsFile.Open(WriteFile(hostile))).Message);

        Assert.Contains("shorter than the 8-byte header length", Assert.Throws<TiltException>(() => SafetensorsFile.Open(WriteFile([1, 2, 3]))).Message);
    }

    [Fact]
    public void Truncated_data_is_refused_naming_the_tensor()
    {
        byte[] good = Bytes(new Tensor("score.weight", "F32", [4], [1f, 2f, 3f, 4f]));
        string path = WriteFile(good[..^3]);
        var e = Assert.Throws<TiltException>(() => SafetensorsFile.Open(path));
        Assert.Contains("'score.weight'.data_offsets", e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Offsets_that_disagree_with_the_shape_and_malformed_headers_are_refused()
    {
        static byte[] WithHeader(string json, int dataBytes)
        {
            byte[] header = System.Text.Encoding.UTF8.GetBytes(json);
            var file = new byte[8 + header.Length + dataBytes];
            BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
            header.CopyTo(file, 8);
            return file;
        }

        Assert.Contains("expected 8", Assert.Throws<TiltException>(() => SafetensorsFile.Open(WriteFile(
            WithHeader("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"v":{"dtype":"F32","shape":[2],"data_offsets":[12,16]}}""", 16)))).Message);
        Assert.Contains("not JSON", Assert.Throws<TiltException>(() => SafetensorsFile.Open(WriteFile(WithHeader("{\"w\":", 0)))).Message);
        Assert.Contains("unknown dtype 'F99'", Assert.Throws<TiltException>(() => SafetensorsFile.Open(WriteFile(
            WithHeader("""{"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}""", 4)))).Message);
        Assert.Contains("not a dimension", Assert.Throws<TiltException>(() => SafetensorsFile.Open(WriteFile(
            WithHeader("""{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4)))).Message);

        // A dtype the format has but a head cannot be: listed, refused when read.
        var file = SafetensorsFile.Open(WriteFile(WithHeader("""{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}""", 8)));
        Assert.Contains("is I64; a head must be F32, F16, BF16 or F64", Assert.Throws<TiltException>(() => file.ReadFloats(file.Find("ids"))).Message);
    }

    [Fact]
    public void A_missing_tensor_lists_the_tensors_the_file_has()
    {
        var file = SafetensorsFile.Open(WriteFile(Bytes(
            new Tensor("score.weight", "F16", [2, 8], RandomValues(16, 1)),
            new Tensor("v_head.summary.bias", "F32", [1], [0.5f]))));
        var e = Assert.Throws<TiltException>(() => file.Find("classifier.weight"));
        Assert.Contains("no tensor 'classifier.weight'", e.Message);
        Assert.Contains("score.weight F16 [2, 8]", e.Message);
        Assert.Contains("v_head.summary.bias F32 [1]", e.Message);
    }

    [Fact]
    public void A_folder_or_a_missing_file_is_refused()
    {
        Assert.Contains("is a folder", Assert.Throws<TiltException>(() => SafetensorsFile.Open(_dir)).Message);
        Assert.Contains("not found", Assert.Throws<TiltException>(() => SafetensorsFile.Open(Path.Combine(_dir, "none.safetensors"))).Message);
    }
}
