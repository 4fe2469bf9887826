namespace Tilt.Engine.Training;

/// <summary>
/// Cholesky factorization A = L L^T of a symmetric positive definite matrix in float64, and the solve with it.
/// The normal equations of ridge regression and the Newton systems here are small ((d+1) x (d+1), d the hidden
/// size), so a dense in-place factorization is the simplest exact method.
/// </summary>
internal static class Cholesky
{
    /// <summary>
    /// Factors <paramref name="a"/> [n, n] row-major in place: its lower triangle becomes L (the upper triangle is
    /// left as it was). Returns false when a pivot is not positive (the matrix is not positive definite in float64).
    /// </summary>
    public static bool Factor(double[] a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            double diagonal = a[j * n + j];
            for (int k = 0; k < j; k++) diagonal -= a[j * n + k] * a[j * n + k];
            if (!(diagonal > 0) || !double.IsFinite(diagonal)) return false;
            double ljj = Math.Sqrt(diagonal);
            a[j * n + j] = ljj;
            for (int i = j + 1; i < n; i++)
            {
                double s = a[i * n + j];
                var li = a.AsSpan(i * n, j);
                var lj = a.AsSpan(j * n, j);
                for (int k = 0; k < j; k++) s -= li[k] * lj[k];
                a[i * n + j] = s / ljj;
            }
        }
        return true;
    }

    /// <summary>Solves L L^T x = b for the factor from <see cref="Factor"/>; b is overwritten by x.</summary>
    public static void Solve(double[] l, int n, double[] b)
    {
        for (int i = 0; i < n; i++)
        {
            double s = b[i];
            for (int k = 0; k < i; k++) s -= l[i * n + k] * b[k];
            b[i] = s / l[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--)
        {
            double s = b[i];
            for (int k = i + 1; k < n; k++) s -= l[k * n + i] * b[k];
            b[i] = s / l[i * n + i];
        }
    }
}
