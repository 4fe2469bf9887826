namespace Tilt.Kernels;

/// <summary>Argument checks shared by every backend, so that they fail the same way.</summary>
internal static class Validation
{
    public static void Shape(int rows, int cols, int length, string name)
    {
        if (rows < 0)
            throw new ArgumentException($"rows must be >= 0, got {rows}.", nameof(rows));
        if (cols < 1)
            throw new ArgumentException($"The row length of {name} must be >= 1, got {cols}.", name);
        if ((long)rows * cols > length)
            throw new ArgumentException($"{name} holds {length} values but [{rows}, {cols}] needs {(long)rows * cols}.", name);
    }

    public static void Rows(int rows, int length, string name)
    {
        if (length < rows)
            throw new ArgumentException($"{name} holds {length} entries but there are {rows} rows.", name);
    }

    public static void Parameters(ReadOnlySpan<SamplingParameters> parameters, int rows)
    {
        Rows(rows, parameters.Length, nameof(parameters));
        for (int i = 0; i < rows; i++)
        {
            try
            {
                parameters[i].Validate();
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"parameters[{i}]: {e.Message}", nameof(parameters), e);
            }
        }
    }

    public static void SampleBase(int logits, int rows, int vocab, ReadOnlySpan<SamplingParameters> parameters,
        int keys, int tokens, int baseLogProb, int samplerLogProb)
    {
        Shape(rows, vocab, logits, "logits");
        Parameters(parameters, rows);
        Rows(rows, keys, "keys");
        Rows(rows, tokens, "tokens");
        Rows(rows, baseLogProb, "baseLogProb");
        Rows(rows, samplerLogProb, "samplerLogProb");
    }

    public static void TiltedStep(int logits, int rows, int vocab, int candidateIds, int candidates, int values,
        ReadOnlySpan<float> beta, ReadOnlySpan<SamplingParameters> parameters, int keys, int tokens, int baseLogProb,
        int tiltedLogProb, int kl)
    {
        Shape(rows, vocab, logits, "logits");
        if (candidateIds == 0)
        {
            if (candidates != vocab)
                throw new ArgumentException($"Without candidateIds every token is a candidate, so candidates must equal vocab ({vocab}), got {candidates}.", nameof(candidates));
        }
        else
        {
            Shape(rows, candidates, candidateIds, "candidateIds");
        }
        if (values != 0)
            Shape(rows, candidates, values, "values");
        if (!beta.IsEmpty)
        {
            Rows(rows, beta.Length, "beta");
            for (int i = 0; i < rows; i++)
                if (!(beta[i] > 0f))
                    throw new ArgumentException($"beta[{i}] must be > 0 (+infinity = no tilt), got {beta[i]}.", nameof(beta));
        }
        else if (values != 0)
        {
            throw new ArgumentException("values were given without beta: pass beta per row (+infinity = no tilt).", nameof(beta));
        }
        Parameters(parameters, rows);
        Rows(rows, keys, "keys");
        Rows(rows, tokens, "tokens");
        Rows(rows, baseLogProb, "baseLogProb");
        Rows(rows, tiltedLogProb, "tiltedLogProb");
        if (kl != 0)
            Rows(rows, kl, "kl");
    }
}
