using System.Reflection;
using Xunit;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The NVRTC kernels' sources compile only on a GPU, which CI does not have. NVRTC compiles without the C library's headers:
/// macros such as INFINITY or NAN are undefined there, and a source using one fails at first use on the GPU (the fused head's
/// kernel did, 2026-12-06, after a review mend; its self-check fell back to the slower tensor ops with a warning). This test
/// reads every kernel source constant of the engine and refuses those names.
/// </summary>
public class KernelSourceTests
{
    private static readonly string[] HostOnly = ["INFINITY", "NAN", "HUGE_VAL", "FLT_MAX", "FLT_MIN", "DBL_MAX", "M_PI", "#include"];

    public static TheoryData<string> Kernels()
    {
        var data = new TheoryData<string>();
        foreach (var (name, _) in Sources()) data.Add(name);
        return data;
    }

    [Fact]
    public void Given_the_engine_assembly_When_its_kernel_sources_are_listed_Then_the_four_kernels_are_among_them()
    {
        var names = Sources().Select(s => s.Name).ToList();

        Assert.Contains(names, n => n.Contains("CrossEntropyKernel", StringComparison.Ordinal));
        Assert.Contains(names, n => n.Contains("FusedCudaAdamW.", StringComparison.Ordinal));
        Assert.Contains(names, n => n.Contains("SumOfSquaresKernel", StringComparison.Ordinal));
        Assert.True(names.Count >= 4, string.Join(", ", names));
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void Given_a_kernel_source_When_read_Then_it_uses_nothing_nvrtc_lacks_without_headers(string kernel)
    {
        string source = Sources().Single(s => s.Name == kernel).Source;
        string code = string.Join('\n', source.Split('\n').Select(line => line.Split("//")[0])); // comments may name anything

        foreach (string name in HostOnly)
            Assert.False(System.Text.RegularExpressions.Regex.IsMatch(code, $@"(?<![A-Za-z0-9_]){System.Text.RegularExpressions.Regex.Escape(name)}(?![A-Za-z0-9_])"),
                $"{kernel} uses {name}, which NVRTC does not define without the C headers; write the value by its bits (__uint_as_float(0xff800000u) for −∞).");
    }

    private static IEnumerable<(string Name, string Source)> Sources() =>
        typeof(Engine.EngineRun).Assembly.GetTypes()
            .SelectMany(t => t.GetFields(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
                .Where(f => f.IsLiteral && f.FieldType == typeof(string))
                .Select(f => (Name: $"{t.FullName}.{f.Name}", Source: (string)f.GetRawConstantValue()!)))
            .Where(s => s.Source.Contains("__global__", StringComparison.Ordinal));
}

public class HeadFallbackWarningTests
{
    [Fact]
    public void Given_a_fused_head_whose_kernel_did_not_run_When_the_run_is_summarised_Then_it_warns_naming_why()
    {
        string? warning = Runs.RunRecord.HeadFallback(AiOs.Planner.Settings.HeadLoss.Fused, "it is unavailable (NVRTC error 6)");

        Assert.NotNull(warning);
        Assert.Contains("NVRTC error 6", warning);
        Assert.Contains("tensor ops", warning);
    }

    [Theory]
    [InlineData(AiOs.Planner.Settings.HeadLoss.Fused, null)]
    [InlineData(AiOs.Planner.Settings.HeadLoss.Unfused, "it is unavailable")]
    [InlineData(AiOs.Planner.Settings.HeadLoss.Auto, "it is unavailable")]
    public void Given_a_head_that_ran_as_planned_When_the_run_is_summarised_Then_nothing_is_said(AiOs.Planner.Settings.HeadLoss head, string? unavailable) =>
        Assert.Null(Runs.RunRecord.HeadFallback(head, unavailable));
}

public class NormsFallbackWarningTests
{
    [Fact]
    public void Given_a_norm_kernel_that_did_not_run_When_the_run_is_summarised_Then_it_warns_naming_why_and_the_bytes()
    {
        string? warning = Runs.RunRecord.NormsFallback("it disagrees with the tensor ops (BFloat16, 3000 elements)");

        Assert.NotNull(warning);
        Assert.Contains("3000 elements", warning);
        Assert.Contains("tensor ops", warning);
        Assert.Contains("2 bytes", warning);
    }

    [Fact]
    public void Given_a_norm_kernel_that_ran_or_was_not_tried_When_the_run_is_summarised_Then_nothing_is_said() =>
        Assert.Null(Runs.RunRecord.NormsFallback(null));
}
