using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Tilt.Bench.EndToEnd;

/// <summary>
/// The decode-throughput baseline: ../shared/bench/rawbatch (a C loop over llama.h built against the libraries the engine
/// loads) run as a child process: prefill, copy the prompt's KV to K sequences, time TG steps of one llama_decode of K
/// tokens with a host argmax, best of its 3 repetitions.
/// </summary>
internal static partial class CLoop
{
    private static readonly string[] OpenMpVariables = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS"];

    /// <summary>The OpenMP variables as the user set them when the harness started (null = unset).</summary>
    public static Dictionary<string, string?> UserEnvironment() => OpenMpVariables.ToDictionary(v => v, Environment.GetEnvironmentVariable);

    public static string Describe(Dictionary<string, string?> env) =>
        string.Join(", ", env.Select(kv => kv.Value is null ? $"{kv.Key} unset" : $"{kv.Key}={kv.Value}"));

    public static EndToEndHarness.Measurement Run(string exe, string model, int k, int threads, int promptTokens, int tokens, Dictionary<string, string?> env)
    {
        var start = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { model, k.ToString(CultureInfo.InvariantCulture), threads.ToString(CultureInfo.InvariantCulture),
                     promptTokens.ToString(CultureInfo.InvariantCulture), tokens.ToString(CultureInfo.InvariantCulture), "1" })
            start.ArgumentList.Add(arg);
        foreach (var (name, value) in env)
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {exe}");
        var stderr = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{exe} ran for more than 10 minutes");
        }
        var match = Result().Match(output);
        if (process.ExitCode != 0 || !match.Success)
            throw new InvalidOperationException($"{exe} exited {process.ExitCode}: {output.Trim()} {stderr.Result.Trim()}");
        double stepMs = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var decode = TimeSpan.FromMilliseconds(stepMs * tokens);
        return new EndToEndHarness.Measurement(TimeSpan.Zero, decode, (long)k * tokens, tokens, TimeSpan.Zero, null);
    }

    [GeneratedRegex(@"step_ms=([0-9.]+)")]
    private static partial Regex Result();
}
