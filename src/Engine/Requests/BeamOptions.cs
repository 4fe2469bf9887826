using Tilt.Engine.Models;

namespace Tilt.Engine.Requests;

/// <summary>
/// Reward-guided beam search over blocks [M29] (search-and-learn's beam search with a process reward model, on blocks): blockwise CD
/// that keeps the best <see cref="Beams"/> of its <see cref="K"/> candidate blocks at every step instead of one, and
/// expands each surviving beam by K / (beams alive) blocks of <see cref="BlockSize"/> tokens from p; the value (a trained
/// head, or the reward of the prefix) scores unfinished blocks and the reward scores finished ones. Finished beams keep
/// their place while they rank among the best; the search ends when every kept beam is finished (or at max tokens) and
/// the output is the kept beam with the highest reward. Beams = 1 is blockwise CD with argmax selection, draw for draw.
/// Text is streamed as soon as every kept beam agrees on it.
/// </summary>
public sealed record BeamOptions : AlignOptions
{
    /// <summary>Beams kept after every step (B). 1..256. Defaults to 2.</summary>
    public int Beams { get; init => field = SessionOptions.CheckSequences(value, nameof(Beams), "beams"); } = 2;

    /// <summary>Candidate blocks per step over all beams (K), decoded as one batch; at least <see cref="Beams"/>. 1..256. Defaults to 8.</summary>
    public int K { get; init => field = SessionOptions.CheckSequences(value, nameof(K), "K"); } = 8;

    /// <summary>Tokens per block (M). Defaults to 8.</summary>
    public int BlockSize { get; init => field = CheckBlockSize(value, nameof(BlockSize)); } = 8;

    /// <summary>Checks what needs two options: every kept beam must get at least one block.</summary>
    public void ValidateBeams()
    {
        if (Beams > K)
            throw new ArgumentException($"beams ({Beams}) must not exceed K ({K}): each kept beam needs at least one candidate block per step", nameof(Beams));
    }
}
