using System.Globalization;
using System.Text.Json;
using Tilt.Cli;

namespace Tilt.Cli.Tests;

public sealed class TheoryCommandTests
{
    // [M8] at n = 4: pi_4(0) = 1/16, KL = log 2 - h(1/16).
    private static readonly double BinaryKl = Math.Log(2.0) + 0.0625 * Math.Log(0.0625) + 0.9375 * Math.Log(0.9375);

    [Fact]
    public async Task Bon_prints_the_binary_example()
    {
        var (code, stdout, stderr) = await Run("theory", "bon", "--p", "0.5,0.5", "--r", "0,1", "--n", "4");
        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains(Format(BinaryKl), stdout, StringComparison.Ordinal);                  // exact KL [M6]
        Assert.Contains(Format(Math.Log(4.0) - 0.75), stdout, StringComparison.Ordinal);      // bound [M7]
        Assert.Contains("0.71875", stdout, StringComparison.Ordinal);                         // win-rate 23/32 [M10]
        Assert.Contains("0.8", stdout, StringComparison.Ordinal);                             // n/(n+1)
        Assert.Contains("0.0625", stdout, StringComparison.Ordinal);                          // pi_4(0)
        Assert.Contains("E[KLhat]", stdout, StringComparison.Ordinal);
        Assert.Contains("fine", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bon_json_parses_and_carries_the_exact_numbers()
    {
        var (code, stdout, _) = await Run("theory", "bon", "--p", "0.5,0.5", "--r", "0,1", "--n", "4", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement root = doc.RootElement;
        Assert.Equal(4, root.GetProperty("n").GetInt32());
        Assert.Equal(BinaryKl, root.GetProperty("kl").GetDouble(), 1e-15);
        Assert.Equal(Math.Log(4.0) - 0.75, root.GetProperty("klBound").GetDouble(), 1e-15);
        Assert.Equal(23.0 / 32.0, root.GetProperty("winRate").GetDouble(), 1e-15);
        Assert.Equal(0.8, root.GetProperty("winRateBound").GetDouble(), 1e-15);
        double klHat = root.GetProperty("expectedKlHat").GetDouble();
        Assert.True(BinaryKl < klHat && klHat < Math.Log(4.0) - 0.75);
        Assert.Equal(0.0625, root.GetProperty("outcomes")[0].GetProperty("piN").GetDouble(), 1e-15);
        Assert.Equal("fine", root.GetProperty("klBand").GetString());
    }

    [Fact]
    public async Task Bon_handles_ties_and_negative_rewards()
    {
        var (code, stdout, _) = await Run("theory", "bon", "--p", "0.25, 0.25, 0.5", "--r", "-1,-1,-2", "--n", "3", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        // The tied top group {0, 1} has F = 1, F- = 1/2: mass 1 - 1/8, split evenly.
        Assert.Equal(7.0 / 16.0, doc.RootElement.GetProperty("outcomes")[0].GetProperty("piN").GetDouble(), 1e-15);
    }

    [Fact]
    public async Task Family_prints_the_M3_worked_example()
    {
        var (code, stdout, stderr) = await Run("theory", "family", "--p", "0.50,0.30,0.20", "--q", "0.22,0.11,0.67", "--beta", "1");
        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains(Format(0.110 / 0.277), stdout, StringComparison.Ordinal);
        Assert.Contains(Format(0.22576623254732243), stdout, StringComparison.Ordinal);   // KL(pi_beta || p)
        Assert.Contains(Format(1.0579715402474761), stdout, StringComparison.Ordinal);    // H(pi_beta, q)
    }

    [Fact]
    public async Task Family_json_parses()
    {
        var (code, stdout, _) = await Run("theory", "family", "--p", "0.50,0.30,0.20", "--q", "0.22,0.11,0.67", "--beta", "0.5", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement root = doc.RootElement;
        Assert.Equal(0.5, root.GetProperty("beta").GetDouble());
        Assert.Equal(0.76959344007932851, root.GetProperty("kl").GetDouble(), 1e-14);
        Assert.Equal(0.68539388651993167, root.GetProperty("crossEntropy").GetDouble(), 1e-14);
        Assert.Equal(0.76337046169543406, root.GetProperty("outcomes")[2].GetProperty("piBeta").GetDouble(), 1e-14);
    }

    [Fact]
    public async Task Frontier_prints_one_row_per_beta_with_falling_kl()
    {
        var (code, stdout, _) = await Run("theory", "frontier", "--p", "0.4,0.3,0.2,0.1", "--r", "0,0.5,1,2", "--betas", "0.1,1,10", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        JsonElement[] points = [.. doc.RootElement.GetProperty("points").EnumerateArray()];
        Assert.Equal(3, points.Length);
        Assert.Equal(0.1, points[0].GetProperty("beta").GetDouble());
        Assert.True(points[0].GetProperty("kl").GetDouble() > points[1].GetProperty("kl").GetDouble());
        Assert.True(points[1].GetProperty("kl").GetDouble() > points[2].GetProperty("kl").GetDouble());
        Assert.True(points[0].GetProperty("expectedReward").GetDouble() > points[2].GetProperty("expectedReward").GetDouble());

        var (textCode, text, _) = await Run("theory", "frontier", "--p", "0.4,0.3,0.2,0.1", "--r", "0,0.5,1,2");
        Assert.Equal(0, textCode);
        Assert.Contains("0.01", text, StringComparison.Ordinal);   // default grid 0.01 .. 100
        Assert.Contains("100", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--p", "0.5,-0.5,1", "--p[1] = -0.5")]
    [InlineData("--p", "0.5,NaN", "--p[1] = NaN")]
    [InlineData("--p", "0.5,0.4", "--p sums to 0.9")]
    [InlineData("--p", "0.5,abc", "\"abc\"")]
    [InlineData("--p", "0.5,,0.5", "--p: \"\"")]
    [InlineData("--r", "0,1,2", "--r has 3 values but --p has 2")]
    [InlineData("--r", "0,Infinity", "--r[1] = Infinity")]
    [InlineData("--r", "0,x1", "\"x1\"")]
    [InlineData("--n", "0", "--n must be >= 1, got 0")]
    [InlineData("--n", "-3", "--n must be >= 1, got -3")]
    [InlineData("--n", "2.5", "--n: \"2.5\" is not an integer")]
    [InlineData("--n", "lots", "--n: \"lots\"")]
    public async Task Bon_rejects_bad_input_with_exit_2_and_names_the_problem(string option, string value, string expected)
    {
        var args = new Dictionary<string, string> { ["--p"] = "0.5,0.5", ["--r"] = "0,1", ["--n"] = "4" };
        args[option] = value;
        var (code, stdout, stderr) = await Run("theory", "bon", "--p", args["--p"], "--r", args["--r"], "--n", args["--n"]);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: ", stderr, StringComparison.Ordinal);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--beta", "0", "--beta must be a finite number > 0, got 0")]
    [InlineData("--beta", "-1", "--beta must be a finite number > 0, got -1")]
    [InlineData("--beta", "NaN", "got NaN")]
    [InlineData("--beta", "fast", "--beta: \"fast\"")]
    [InlineData("--beta", "1,2", "--beta takes one number")]
    [InlineData("--q", "0.5,0.5", "--q has 2 values but --p has 3")]
    [InlineData("--q", "0.5,0.6,-0.1", "--q[2] = -0.1")]
    [InlineData("--q", "1,0,0", "q is 0 wherever p is positive")]
    public async Task Family_rejects_bad_input_with_exit_2_and_names_the_problem(string option, string value, string expected)
    {
        var args = new Dictionary<string, string> { ["--p"] = "0,0.5,0.5", ["--q"] = "0.2,0.3,0.5", ["--beta"] = "1" };
        args[option] = value;
        var (code, _, stderr) = await Run("theory", "family", "--p", args["--p"], "--q", args["--q"], "--beta", args["--beta"]);
        Assert.Equal(2, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Frontier_rejects_a_non_positive_beta()
    {
        var (code, _, stderr) = await Run("theory", "frontier", "--p", "0.5,0.5", "--r", "0,1", "--betas", "1,0");
        Assert.Equal(2, code);
        Assert.Contains("--betas[1] must be a finite number > 0, got 0", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bon", "--r", "0,1", "--n", "4", "--p is required")]
    [InlineData("bon", "--p", "0.5,0.5", "--n", "4", "--r is required")]
    [InlineData("bon", "--p", "0.5,0.5", "--r", "0,1", "--n is required")]
    [InlineData("family", "--p", "0.5,0.5", "--q", "0.5,0.5", "--beta is required")]
    public async Task Missing_options_are_named(string sub, string o1, string v1, string o2, string v2, string expected)
    {
        var (code, _, stderr) = await Run("theory", sub, o1, v1, o2, v2);
        Assert.Equal(2, code);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    private static string Format(double value) => value.ToString("G12", CultureInfo.InvariantCulture);

    private static async Task<(int Code, string Stdout, string Stderr)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await Program.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
