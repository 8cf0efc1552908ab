using System.Text.Json.Nodes;

namespace AiOs.Planner.Cli.Tests;

/// <summary>buffer_size left to its default is sized to the model; a typed value too small is refused with the one that works (issue 14 item 4).</summary>
public class BufferSizeDefaultTests
{
    // The refusal: 128K vocabulary, parameters in RAM, the aios executor swapping the embedding as one unit.
    private static readonly string[] Llama3InRam =
        ["plan", "--model", "llama-3-8b", "--hardware", "h200-1x", "--zero-stage", "zero3", "--offload-params", "cpu", "--offload-optimizer", "cpu", "--grad-checkpointing", "--micro-batch", "1", "--memory-only"];

    [Fact]
    public void Given_the_default_buffer_size_When_planned_Then_it_is_sized_to_the_largest_unit_and_has_no_buffer_problem()
    {
        var r = CliRunner.Run([.. Llama3InRam, "--json"]);

        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.True(doc["settings"]!["buffer_size"]!.GetValue<long>() > 1_000_000_000, r.Stdout);
        Assert.DoesNotContain(doc["problems"]!.AsArray(), p => p!.GetValue<string>().Contains("buffer_size"));
        Assert.Contains(doc["notes"]!.AsArray(), n => n!.GetValue<string>().StartsWith("--buffer-size:"));
    }

    [Fact]
    public void Given_an_explicit_buffer_size_too_small_When_planned_Then_refused_with_the_value_that_works()
    {
        var r = CliRunner.Run([.. Llama3InRam, "--buffer-size", "100000000"]);

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("buffer_size 100,000,000 elements is smaller than llama-3-8b's largest unit", r.Console);
        Assert.Contains("--buffer-size 1051000000", r.Console);
    }
}
