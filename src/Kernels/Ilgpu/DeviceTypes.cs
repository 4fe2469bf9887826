using System.Runtime.InteropServices;

namespace Tilt.Kernels.Ilgpu;

/// <summary>Per-row inputs of the fused step kernel, packed by the host from the public per-row spans.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RowSettings
{
    public float Temperature; // 0 = greedy
    public int TopK;          // 0 = off
    public float TopP;        // 1 = off
    public float Beta;        // +inf = no tilt
    public uint SeedLo, SeedHi, Request, Step, Row;
}

/// <summary>Per-row outputs of the fused step kernel; Status != 0 reports a rejected input (see <see cref="RowStatus"/>).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RowOutput
{
    public int Token;
    public int Status;
    public int Detail;        // the index the status refers to
    public float BaseLogProb;
    public float TiltedLogProb;
    public float Kl;
}

/// <summary>Why a row was rejected; the host turns it into the same ArgumentException as the CPU backend.</summary>
internal static class RowStatus
{
    public const int Ok = 0;
    public const int LogitsNaN = 1;
    public const int LogitsPositiveInfinity = 2;
    public const int LogitsAllMasked = 3;
    public const int ValuesNaN = 4;
    public const int ValuesPositiveInfinity = 5;
    public const int NoFiniteCandidate = 6;
    public const int ScoreOverflow = 7;
}

/// <summary>Shape of one step launch (scalars shared by all rows).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct StepShape
{
    public int Vocab;        // row length of logits
    public int Candidates;   // candidates per row (= Vocab when Dense)
    public int Dense;        // 1: candidate j is token j; 0: ids [rows, Candidates]
    public int HasValues;    // 1: values [rows, Candidates] are given
    public int WantKl;       // 1: compute the KL
    public int IdBits;       // bits needed for a token id (the low bits of a sort key above them are always 0)
}
