using System.Text;
using LLama;
using LLama.Exceptions;

namespace Tilt.Engine.Models;

/// <summary>One message of a chat (role: system, user, assistant, ...).</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>Turns chat messages into the prompt text a model expects.</summary>
public static class ChatPrompt
{
    /// <summary>
    /// Applies the model's chat template (<see cref="ModelInfo.ChatTemplate"/>) through llama.cpp's
    /// llama_chat_apply_template, ending with the opening of the assistant's turn. A model without a template (a base
    /// model such as stories260K) gets <see cref="Fallback"/>.
    /// </summary>
    /// <exception cref="TiltException">The template is not one llama.cpp recognizes.</exception>
    public static string Format(ModelInfo model, IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(messages);
        return model.ChatTemplate is { } template ? Apply(template, messages) : Fallback(messages);
    }

    /// <summary>
    /// The prompt for a model without a chat template: the messages' contents joined by blank lines, roles left out,
    /// so a base model simply continues the text (one user message "Once upon a time" is the prompt "Once upon a time").
    /// </summary>
    public static string Fallback(IReadOnlyList<ChatMessage> messages) => string.Join("\n\n", messages.Select(m => m.Content));

    /// <summary>Applies a template (its Jinja text or a name llama.cpp knows, such as chatml) to the messages.</summary>
    /// <exception cref="TiltException">llama.cpp does not recognize the template.</exception>
    public static string Apply(string template, IReadOnlyList<ChatMessage> messages) => Apply(template, messages, addAssistant: true);

    /// <summary>
    /// Applies a template; <paramref name="addAssistant"/> false formats a finished conversation (the assistant's last
    /// turn closed, as a reward model reads a prompt and its response) instead of opening the assistant's next turn.
    /// </summary>
    /// <exception cref="TiltException">llama.cpp does not recognize the template.</exception>
    public static string Apply(string template, IReadOnlyList<ChatMessage> messages, bool addAssistant)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(messages);
        try
        {
            var chat = new LLamaTemplate(template) { AddAssistant = addAssistant };
            foreach (var m in messages) chat.Add(m.Role, m.Content);
            return Encoding.UTF8.GetString(chat.Apply());
        }
        catch (Exception e) when (e is InvalidOperationException or RuntimeError or ArgumentException)
        {
            throw new TiltException($"the model's chat template is not one llama.cpp's llama_chat_apply_template recognizes: {e.Message}", e);
        }
    }
}
