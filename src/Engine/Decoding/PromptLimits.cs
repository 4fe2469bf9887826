using Tilt.Engine.Models;

namespace Tilt.Engine.Decoding;

/// <summary>Checks that a request fits the model's context before any work starts.</summary>
internal static class PromptLimits
{
    public static void Check(ModelInfo model, int promptTokens, int maxTokens)
    {
        long needed = (long)promptTokens + maxTokens;
        if (needed > model.TrainedContextSize)
        {
            throw new RequestException(
                $"the prompt ({promptTokens} tokens) plus max tokens ({maxTokens}) is {needed} tokens, more than the model's context of {model.TrainedContextSize}; " +
                "shorten the prompt or lower --max-tokens");
        }
    }
}
