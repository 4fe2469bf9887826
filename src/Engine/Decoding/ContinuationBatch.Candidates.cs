using System.Runtime.InteropServices;
using Tilt.Kernels;

namespace Tilt.Engine.Decoding;

/// <summary>One candidate at a time: stopping, dropping, its sequence, tokens and text.</summary>
internal sealed partial class ContinuationBatch
{
    /// <summary>
    /// Stops every candidate where it stands (deadline): pending tokens stay undecoded, so hidden states are one token behind
    /// for those, which <see cref="HiddenIsCurrent"/> records.
    /// </summary>
    public void Stop()
    {
        if (IsFinished) return;
        for (int i = 0; i < _settings.Candidates; i++)
        {
            if (_phase[i] is Phase.Decode or Phase.DecodeOnly) HiddenIsCurrent[i] = false;
            _phase[i] = Phase.Done;
        }
        Live = 0;
        _remaining = 0;
    }

    /// <summary>The engine sequence of a candidate in this run.</summary>
    public int SequenceOf(int candidate) => _settings.Sequences[candidate];

    /// <summary>True when the candidate will decode no more (finished, cut, or dropped).</summary>
    public bool IsDone(int candidate) => _phase[candidate] == Phase.Done;

    /// <summary>Stops one unfinished candidate where it stands (early rejection); its sequence can then be freed.</summary>
    public void Drop(int candidate)
    {
        if (_phase[candidate] == Phase.Done) return;
        if (_phase[candidate] is Phase.Decode or Phase.DecodeOnly) HiddenIsCurrent[candidate] = false;
        if (_phase[candidate] != Phase.DecodeOnly) Live--;
        _phase[candidate] = Phase.Done;
        _remaining--;
    }

    /// <summary>The text a candidate reads as now (its pending incomplete UTF-8 shown as U+FFFD).</summary>
    public string CurrentText(int candidate) =>
        Texts[candidate].Stopped ? Texts[candidate].ToString() : Texts[candidate] + Decoders[candidate].Preview([]);

    /// <summary>Flushes the candidates' detokenizers: the final texts.</summary>
    public string FinishText(int candidate)
    {
        if (_settings.TrackText) Texts[candidate].Append(Decoders[candidate].Flush());
        return Texts[candidate].ToString();
    }

    /// <summary>After <see cref="FinishText"/>: the end of the candidate's text that was held back from streaming.</summary>
    public string UnstreamedText(int candidate) => Texts[candidate].TakeStreamable(final: true);

    /// <summary>Without text tracking: whether the candidate's newest token completed a stop string after the prefix.</summary>
    private bool StopInPreview(int candidate, StopMatcher stop)
    {
        int g = Group(candidate);
        string tail = _settings.StopTails?[g] ?? _settings.StopTail;
        var prefix = _settings.StopPrefixes?[g] ?? _settings.StopPrefix!;
        string text = tail + prefix.Preview(TokenSpan(candidate));
        return stop.Find(text, tail.Length) >= 0;
    }

    public ReadOnlySpan<int> TokenSpan(int candidate) => CollectionsMarshal.AsSpan(Tokens[candidate]);

    /// <summary>The prefix (start row) a candidate continues.</summary>
    private int Group(int candidate) => _settings.StartGroup?[candidate] ?? 0;

    private RngKey Key(int candidate) =>
        new(_settings.Seed, _settings.Request, (uint)(_settings.StepOffset + Tokens[candidate].Count), _settings.Rows[candidate]);
}
