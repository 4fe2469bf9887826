namespace Tilt.Engine.Statistics;

/// <summary>
/// Neumaier's compensated summation: the error stays O(eps) instead of O(count * eps), which matters for
/// the cumulative masses of [M5] over a million outcomes and for KL sums whose terms cancel.
/// </summary>
internal struct CompensatedSum
{
    private double _sum;
    private double _compensation;

    public readonly double Value => _sum + _compensation;

    public void Add(double x)
    {
        double t = _sum + x;
        // Whichever operand is larger in magnitude is exact in t; recover the low-order bits of the other.
        _compensation += Math.Abs(_sum) >= Math.Abs(x) ? (_sum - t) + x : (x - t) + _sum;
        _sum = t;
    }

    public static double Of(ReadOnlySpan<double> values)
    {
        var s = new CompensatedSum();
        foreach (double v in values)
        {
            s.Add(v);
        }

        return s.Value;
    }
}
