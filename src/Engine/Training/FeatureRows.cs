namespace Tilt.Engine.Training;

/// <summary>Rows of raw features (hidden states) that trainers read by index, wherever they are stored.</summary>
public interface IFeatureRows
{
    /// <summary>Number of rows.</summary>
    int Count { get; }

    /// <summary>d, the width of a row.</summary>
    int Dimension { get; }

    /// <summary>Row i [d]; valid until the storage changes (trainers never hold it across calls).</summary>
    ReadOnlySpan<float> Row(int i);
}

/// <summary>Rows stored contiguously, [rows, d] row-major.</summary>
public sealed class DenseFeatureRows : IFeatureRows
{
    private readonly ReadOnlyMemory<float> _data;

    /// <param name="data">[rows, d] row-major (not copied).</param>
    /// <param name="dimension">d.</param>
    public DenseFeatureRows(ReadOnlyMemory<float> data, int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        if (data.Length % dimension != 0) throw new ArgumentException($"{data.Length} values are not whole rows of {dimension}", nameof(data));
        _data = data;
        Dimension = dimension;
        Count = data.Length / dimension;
    }

    public int Count { get; }
    public int Dimension { get; }
    public ReadOnlySpan<float> Row(int i) => _data.Span.Slice(i * Dimension, Dimension);
}
