using Tilt.Engine.Text;
using Tilt.Kernels;
using Tilt.Engine.Requests;

namespace Tilt.Engine.Decoding;

internal sealed partial class ContinuationBatch
{
    /// <summary>What one run does.</summary>
    public sealed record Settings
    {
        /// <summary>Candidates in this run (&lt;= capacity).</summary>
        public required int Candidates { get; init; }

        /// <summary>[Candidates] engine sequence of each candidate.</summary>
        public required int[] Sequences { get; init; }

        /// <summary>[Candidates] RNG row of each candidate.</summary>
        public required uint[] Rows { get; init; }

        public required int MaxTokens { get; init; }
        public required SamplingParameters Sampling { get; init; }
        public required ulong Seed { get; init; }
        public required uint Request { get; init; }

        /// <summary>Response position of the first token of this run (RNG step of t = 0).</summary>
        public int StepOffset { get; init; }

        public bool DecodeLastToken { get; init; }

        /// <summary>Keep each candidate's text (incremental detokenization). Defaults to true.</summary>
        public bool TrackText { get; init; } = true;

        /// <summary>The request's stop strings and stop token ids; null = none (nothing is matched).</summary>
        public StopMatcher? Stop { get; init; }

        /// <summary>
        /// Without <see cref="TrackText"/>: the detokenizer of the text the candidates continue (blockwise CD's accepted
        /// prefix), so a candidate's text is read as <see cref="StopTail"/> + its preview and a stop string that straddles the
        /// block boundary is found.
        /// </summary>
        public ITextDecoder? StopPrefix { get; init; }

        /// <summary>The last characters of the continued text (enough for the longest stop string but one).</summary>
        public string StopTail { get; init; } = "";

        /// <summary>
        /// [Candidates] which prefix each candidate continues (a row of the start logits and hidden states given to
        /// <see cref="Start"/>); null: all continue row 0. Beam search continues several beams in one rollout.
        /// </summary>
        public int[]? StartGroup { get; init; }

        /// <summary>Per prefix (start row): <see cref="StopPrefix"/> and <see cref="StopTail"/> of that prefix; null: the shared ones.</summary>
        public ITextDecoder[]? StopPrefixes { get; init; }

        public string[]? StopTails { get; init; }

        /// <summary>Record every token's log p (<see cref="TokenLogProbs"/>); implied by <see cref="TopLogprobs"/> &gt; 0.</summary>
        public bool Logprobs { get; init; }

        /// <summary>Alternatives per token from the top-N pass (0 = none: no row of this run joins the pass).</summary>
        public int TopLogprobs { get; init; }
    }
}
