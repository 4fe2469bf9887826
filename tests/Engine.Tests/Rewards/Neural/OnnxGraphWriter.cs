using System.Text;

namespace Tilt.Engine.Tests.Rewards.Neural;

/// <summary>
/// Writes tiny ONNX graphs (ModelProto, protobuf wire format by hand, opset 11) so the tests can give ONNX Runtime
/// graphs with chosen input and output names without Python. Field numbers are those of onnx.proto3.
/// </summary>
internal static class OnnxGraphWriter
{
    public const int Float = 1;
    public const int Int64 = 7;

    /// <summary>A graph input or output: a tensor of <paramref name="ElementType"/>; a dimension is a number or a symbolic name.</summary>
    public sealed record Value(string Name, int ElementType, params object[] Dimensions);

    /// <summary>One node; attributes are (name, long), (name, long[]) pairs.</summary>
    public sealed record Node(string OpType, string[] Inputs, string[] Outputs, params (string Name, object Value)[] Attributes);

    public static byte[] Model(IEnumerable<Value> inputs, IEnumerable<Node> nodes, IEnumerable<Value> outputs)
    {
        var graph = new ProtoMessage();
        foreach (Node node in nodes)
        {
            var n = new ProtoMessage();
            foreach (string i in node.Inputs) n.String(1, i);
            foreach (string o in node.Outputs) n.String(2, o);
            n.String(4, node.OpType);
            foreach (var (name, value) in node.Attributes)
            {
                var a = new ProtoMessage().String(1, name);
                switch (value)
                {
                    case long i: a.Varint(3, (ulong)i).Varint(20, 2); break;             // INT
                    case long[] ints: foreach (long i in ints) a.Varint(8, (ulong)i); a.Varint(20, 7); break; // INTS
                    default: throw new ArgumentException($"attribute {name}: unsupported value {value}");
                }

                n.Message(5, a);
            }

            graph.Message(1, n);
        }

        graph.String(2, "test");
        foreach (Value input in inputs) graph.Message(11, ValueInfo(input));
        foreach (Value output in outputs) graph.Message(12, ValueInfo(output));

        var model = new ProtoMessage()
            .Varint(1, 6)                                            // ir_version 6
            .String(2, "tilt-tests")                                 // producer_name
            .Message(7, graph)
            .Message(8, new ProtoMessage().String(1, "").Varint(2, 11)); // opset_import: default domain, opset 11
        return model.ToArray();
    }

    /// <summary>
    /// A stand-in classifier over BERT-style inputs whose logits are computable from the token ids:
    /// logits[b] = (sum of ids over the mask, mask length[, sum of segment ids over the mask]).
    /// </summary>
    public static byte[] CountingClassifier(bool withTokenTypes)
    {
        var inputs = new List<Value>
        {
            new("input_ids", Int64, "batch", "sequence"),
            new("attention_mask", Int64, "batch", "sequence"),
        };
        var nodes = new List<Node>
        {
            new("Mul", ["input_ids", "attention_mask"], ["masked_ids"]),
            new("ReduceSum", ["masked_ids"], ["id_sum"], ("axes", new long[] { 1 }), ("keepdims", 1L)),
            new("ReduceSum", ["attention_mask"], ["length"], ("axes", new long[] { 1 }), ("keepdims", 1L)),
        };
        string[] parts = ["id_sum", "length"];
        if (withTokenTypes)
        {
            inputs.Add(new("token_type_ids", Int64, "batch", "sequence"));
            nodes.Add(new("Mul", ["token_type_ids", "attention_mask"], ["masked_types"]));
            nodes.Add(new("ReduceSum", ["masked_types"], ["type_sum"], ("axes", new long[] { 1 }), ("keepdims", 1L)));
            parts = [.. parts, "type_sum"];
        }

        nodes.Add(new("Concat", parts, ["counts"], ("axis", 1L)));
        nodes.Add(new("Cast", ["counts"], ["logits"], ("to", (long)Float)));
        return Model(inputs, nodes, [new("logits", Float, "batch", (long)parts.Length)]);
    }

    private static ProtoMessage ValueInfo(Value value)
    {
        var shape = new ProtoMessage();
        foreach (object d in value.Dimensions)
        {
            shape.Message(1, d switch
            {
                long n => new ProtoMessage().Varint(1, (ulong)n),
                int n => new ProtoMessage().Varint(1, (ulong)n),
                string s => new ProtoMessage().String(2, s),
                _ => throw new ArgumentException($"dimension {d}"),
            });
        }

        var tensor = new ProtoMessage().Varint(1, (ulong)value.ElementType).Message(2, shape);
        return new ProtoMessage().String(1, value.Name).Message(2, new ProtoMessage().Message(1, tensor));
    }

    /// <summary>Protobuf fields in order: varints (wire type 0) and length-delimited bytes (wire type 2).</summary>
    internal sealed class ProtoMessage
    {
        private readonly MemoryStream _bytes = new();

        public ProtoMessage Varint(int field, ulong value)
        {
            WriteVarint((ulong)(field << 3));
            WriteVarint(value);
            return this;
        }

        public ProtoMessage String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        /// <summary>A float field (wire type 5: four little-endian bytes).</summary>
        public ProtoMessage Float(int field, float value)
        {
            WriteVarint((ulong)((field << 3) | 5));
            Span<byte> bytes = stackalloc byte[4];
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
            _bytes.Write(bytes);
            return this;
        }

        public ProtoMessage Message(int field, ProtoMessage value) => Bytes(field, value.ToArray());

        public byte[] ToArray() => _bytes.ToArray();

        private ProtoMessage Bytes(int field, byte[] value)
        {
            WriteVarint((ulong)((field << 3) | 2));
            WriteVarint((ulong)value.Length);
            _bytes.Write(value);
            return this;
        }

        private void WriteVarint(ulong value)
        {
            while (value >= 0x80)
            {
                _bytes.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }

            _bytes.WriteByte((byte)value);
        }
    }
}
