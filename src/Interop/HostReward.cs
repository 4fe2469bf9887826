using System.Buffers;
using System.Text;
using Tilt.Engine.Rewards;

namespace Tilt.Interop;

/// <summary>
/// Calls a C <c>tilt_reward_fn</c> for one candidate. Wrapped in a <see cref="CallbackReward"/>, which adds the
/// reward's name and the candidate index to failures; a non-zero return or a non-finite reward is a
/// <see cref="HostCallbackException"/>, which the exports report as TILT_ERR_CALLBACK.
/// </summary>
internal sealed unsafe class HostReward
{
    private readonly delegate* unmanaged[Cdecl]<void*, byte*, byte*, int, double*, int> _function;
    private readonly void* _userData;

    // One prompt per request, scored many times: keep its UTF-8 bytes. Swapped as one immutable object so requests
    // on other threads that share this reward never see a torn pair.
    private PromptBytes? _prompt;

    public HostReward(delegate* unmanaged[Cdecl]<void*, byte*, byte*, int, double*, int> function, void* userData)
    {
        _function = function;
        _userData = userData;
    }

    public double Score(RewardInput input)
    {
        var prompt = _prompt;
        if (prompt is null || !ReferenceEquals(prompt.Text, input.Prompt))
        {
            prompt = new PromptBytes(input.Prompt, Utf8.ToNullTerminated(input.Prompt));
            _prompt = prompt;
        }

        byte[] text = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(input.Text.Length) + 1);
        try
        {
            text[Encoding.UTF8.GetBytes(input.Text, text)] = 0;
            double reward = double.NaN;
            int code;
            fixed (byte* p = prompt.Bytes)
            fixed (byte* t = text)
            {
                code = _function(_userData, p, t, input.IsFinished ? 1 : 0, &reward);
            }
            if (code != 0) throw new HostCallbackException($"the reward callback returned {code}");
            if (!double.IsFinite(reward)) throw new HostCallbackException($"the reward callback gave a non-finite reward ({reward})");
            return reward;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(text);
        }
    }

    private sealed record PromptBytes(string Text, byte[] Bytes);
}
