namespace Tilt.Kernels;

/// <summary>
/// Identifies one random stream: the noise for token id c is Philox4x32-10 with key (Seed) at counter
/// (c, Row, Step, Request) (exact layout in <see cref="Philox"/>). <paramref name="Row"/> is the LOGICAL sequence id
/// chosen by the caller, not the batch position, so a sequence draws the same noise whatever the batch composition.
/// </summary>
/// <param name="Seed">The request's seed.</param>
/// <param name="Request">Request id (distinguishes requests that share a seed).</param>
/// <param name="Step">Decoding step (token position) of this draw.</param>
/// <param name="Row">Logical sequence (candidate) id within the request.</param>
public readonly record struct RngKey(ulong Seed, uint Request, uint Step, uint Row);
