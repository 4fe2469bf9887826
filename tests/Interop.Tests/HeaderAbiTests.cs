using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Tilt.Tests;

namespace Tilt.Interop.Tests;

/// <summary>
/// The managed mirrors against native/include/tilt.h itself: every struct's fields (names, order, C layout on LP64)
/// and every status and enum value. The shim repeats the layout check at run time (AbiCheck); this catches a drift
/// at build time, before any C compiler is involved.
/// </summary>
public sealed partial class HeaderAbiTests
{
    private static readonly string Header = File.ReadAllText(Path.Combine(TestPaths.RepositoryRoot, "native", "include", "tilt.h"));

    // C field names whose PascalCase form is not the managed name.
    private static readonly Dictionary<string, string> Renamed = new() { ["logprob"] = "LogProb" };

    public static TheoryData<string, Type> Structs() => new()
    {
        { "tilt_model_options", typeof(TiltModelOptions) },
        { "tilt_model_info", typeof(TiltModelInfo) },
        { "tilt_request_options", typeof(TiltRequestOptions) },
        { "tilt_event", typeof(TiltEvent) },
        { "tilt_output_info", typeof(TiltOutputInfo) },
    };

    [Theory]
    [MemberData(nameof(Structs))]
    public void Struct_layout_matches_the_header(string name, Type mirror)
    {
        var fields = ParseStruct(name);
        var managed = mirror.GetFields(BindingFlags.Instance | BindingFlags.Public).OrderBy(f => f.MetadataToken).ToArray();
        Assert.Equal(fields.Select(f => Pascal(f.Name)), managed.Select(f => f.Name));

        // Natural alignment on LP64 (Linux x64 and arm64): what the C compiler does with these field types.
        int offset = 0, align = 1;
        foreach (var (type, field) in fields)
        {
            int size = SizeOf(type);
            offset = (offset + size - 1) / size * size;
            align = Math.Max(align, size);
            Assert.True(offset == (int)Marshal.OffsetOf(mirror, Pascal(field)), $"{name}.{field}: C offset {offset}, managed {Marshal.OffsetOf(mirror, Pascal(field))}");
            offset += size;
        }
        Assert.Equal((offset + align - 1) / align * align, Marshal.SizeOf(mirror));
    }

    [Fact]
    public void Abi_check_accepts_its_own_layout_and_names_a_moved_field()
    {
        uint[] layout = AbiCheck.ManagedLayout();
        Assert.Null(AbiCheck.CompareLayout(layout));
        // [size, 3, offsets x3] of tilt_model_options, then [size, 6, offsets x6] of tilt_model_info.
        layout[5 + 2 + 2] += 4;
        Assert.Contains("tilt_model_info field 2 (HiddenSize)", AbiCheck.CompareLayout(layout));
        Assert.Contains("fewer structs", AbiCheck.CompareLayout(layout.AsSpan(0, 5)));
    }

    [Fact]
    public void Status_codes_match_the_header()
    {
        var defines = StatusDefine().Matches(Header).ToDictionary(m => m.Groups[1].Value, m => int.Parse(m.Groups[2].Value));
        var constants = typeof(TiltStatus).GetFields().ToDictionary(f => f.Name, f => (int)f.GetRawConstantValue()!);
        Assert.Equal(14, defines.Count);
        foreach (var (name, value) in defines)
        {
            string managed = name == "OK" ? "Ok" : Pascal(name["ERR_".Length..].ToLowerInvariant());
            Assert.True(constants.TryGetValue(managed, out int actual), $"TiltStatus.{managed} missing");
            Assert.Equal(value, actual);
        }
        Assert.Equal(defines.Count, constants.Count);
    }

    [Theory]
    [InlineData("TILT_STRATEGY_", typeof(Strategy))]
    [InlineData("TILT_EVENT_", typeof(EventKind))]
    [InlineData("TILT_KL_", typeof(NativeKlMethod))]
    public void Enum_values_match_the_header(string prefix, Type mirror)
    {
        var values = new Regex(prefix + @"(\w+)\s*=\s*(\d+)").Matches(Header)
            .ToDictionary(m => Pascal(m.Groups[1].Value.ToLowerInvariant()), m => int.Parse(m.Groups[2].Value));
        Assert.Equal(values.OrderBy(v => v.Value), Enum.GetValues(mirror).Cast<object>()
            .Select(v => new KeyValuePair<string, int>(Enum.GetName(mirror, v)!, (int)v)).OrderBy(v => v.Value));
    }

    [Fact]
    public void Api_version_matches_the_header()
    {
        int major = int.Parse(Regex.Match(Header, @"#define TILT_API_VERSION_MAJOR (\d+)").Groups[1].Value);
        int minor = int.Parse(Regex.Match(Header, @"#define TILT_API_VERSION_MINOR (\d+)").Groups[1].Value);
        Assert.Equal(Exports.ApiVersion, (uint)((major << 16) | minor));
    }

    private static List<(string Type, string Name)> ParseStruct(string name)
    {
        var match = Regex.Match(Header, @"typedef struct " + name + @" \{(.*?)\} " + name + ";", RegexOptions.Singleline);
        Assert.True(match.Success, $"{name} not found in tilt.h");
        string body = Regex.Replace(match.Groups[1].Value, @"/\*.*?\*/", " ", RegexOptions.Singleline);
        return body.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(declaration =>
            {
                int cut = declaration.LastIndexOfAny([' ', '*']);
                return (declaration[..(cut + 1)].Trim(), declaration[(cut + 1)..]);
            })
            .ToList();
    }

    private static int SizeOf(string type) => type.Contains('*') ? 8 : type switch
    {
        "int32_t" or "uint32_t" or "float" => 4,
        "int64_t" or "uint64_t" or "double" or "size_t" => 8,
        _ => throw new InvalidOperationException($"unknown C type {type}"),
    };

    private static string Pascal(string snake) =>
        Renamed.TryGetValue(snake, out var renamed) ? renamed : string.Concat(snake.Split('_').Select(p => char.ToUpperInvariant(p[0]) + p[1..]));

    [GeneratedRegex(@"#define TILT_(OK|ERR_\w+)\s+\(?(-?\d+)\)?")]
    private static partial Regex StatusDefine();
}
