using System.Text.Json.Nodes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Cli.Tests;

/// <summary>
/// <c>--head-loss auto|fused|unfused</c>: <c>aios plan --json</c> carries the head the engine would run (auto resolved
/// once, on the card or its --gpu-memory-limit), <c>aios train</c> records the head it ran, and a bad value is refused
/// naming the flag and the choices.
/// </summary>
public sealed class HeadLossOptionTests : IDisposable
{
    private readonly TempDir _root = new("aios-headloss-");

    public void Dispose() => _root.Dispose();

    private static readonly string[] Gpt2Mb8 = ["--model", "gpt2", "--hardware", "h100-1x-vm", "--micro-batch", "8", "--seq-len", "1024", "--memory-only", "--json"];

    /// <summary>Bytes halfway between the plan's device peaks with the fused head and the unfused one: only the fused head fits.</summary>
    private static string OnlyFusedFits()
    {
        var m = ModelCatalog.Default.Load("gpt2");
        var hw = ProfileCatalog.Default.Load("h100-1x-vm");
        var s = new TrainingSettings { MicroBatch = 8, SeqLen = 1024 };
        long fused = EngineMemory.DevicePeak(m, hw, s, fused: true).Value, unfused = EngineMemory.DevicePeak(m, hw, s, fused: false).Value;
        return ((fused + unfused) / 2).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static (int Code, JsonNode Doc) Plan(params string[] more)
    {
        var r = CliRunner.Run(["plan", .. Gpt2Mb8, .. more]);
        return (r.ExitCode, JsonNode.Parse(r.Stdout)!);
    }

    private static string LogitsNote(JsonNode doc) =>
        doc["memory"]!["breakdown"]!["gpu"]!.AsArray().Single(i => i!["name"]!.GetValue<string>() == "logits and loss")!["note"]!.GetValue<string>();

    [Fact]
    public void Given_gpt2_mb8_on_an_80GB_card_When_planned_as_json_Then_the_settings_carry_the_kernels_fused_head_and_fp16_the_unfused_one()
    {
        var (code, doc) = Plan();

        Assert.Equal(ExitCodes.Ok, code);
        Assert.Equal("fused", doc["settings"]!["head_loss"]!.GetValue<string>());
        Assert.StartsWith("fused head and loss (auto: with its kernel", LogitsNote(doc), StringComparison.Ordinal);

        var (fp16Code, fp16) = Plan("--precision", "fp16");
        Assert.Equal(ExitCodes.Ok, fp16Code);
        Assert.Equal("unfused", fp16["settings"]!["head_loss"]!.GetValue<string>());
        Assert.StartsWith("unfused head (auto", LogitsNote(fp16), StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_limit_only_the_fused_head_fits_When_planned_as_json_Then_the_fused_head_and_a_feasible_plan()
    {
        var (code, doc) = Plan("--gpu-memory-limit", OnlyFusedFits());

        Assert.Equal(ExitCodes.Ok, code);
        Assert.True(doc["feasible"]!.GetValue<bool>());
        Assert.Equal("fused", doc["settings"]!["head_loss"]!.GetValue<string>());
    }

    [Fact]
    public void Given_the_unfused_head_forced_under_that_limit_When_planned_Then_it_is_kept_and_the_plan_does_not_fit()
    {
        var (code, doc) = Plan("--gpu-memory-limit", OnlyFusedFits(), "--head-loss", "unfused");

        Assert.Equal(ExitCodes.Infeasible, code);
        Assert.Equal("unfused", doc["settings"]!["head_loss"]!.GetValue<string>());
        Assert.StartsWith("unfused head (head_loss unfused)", LogitsNote(doc), StringComparison.Ordinal);
    }

    [Fact]
    public void Given_an_unknown_head_When_run_Then_it_is_refused_naming_the_flag_and_the_choices()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h100-1x-vm", "--head-loss", "chunked");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("'chunked' is not a valid value for --head-loss; use one of auto, fused, unfused", r.Console + r.Stderr);
    }

    [Fact]
    public void Given_the_fused_head_for_deepspeed_When_planned_Then_it_is_refused_naming_both_flags()
    {
        var r = CliRunner.Run("plan", "--model", "gpt2", "--hardware", "h100-1x-vm", "--head-loss", "fused", "--executor", "deepspeed");

        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        Assert.Contains("--head-loss fused", r.Console + r.Stderr);
        Assert.Contains("--executor aios", r.Console + r.Stderr);
    }

    [Theory]
    [InlineData(null, "fused")] // no device budget on a CPU: the fused head, since it lowers the bytes at 8 × 128 tokens
    [InlineData("unfused", "unfused")]
    public void Given_a_cpu_run_When_trained_Then_settings_json_records_the_head_it_ran(string? flag, string expected)
    {
        var m = ModelCatalog.Default.Load("tiny-gpt");
        Assert.True(EngineHeadLoss.FusingSavesBytes(8 * 128, m.VocabSize, m.HiddenSize, Precision.Bf16));
        string[] head = flag is null ? [] : ["--head-loss", flag];
        var r = CliRunner.Run(["train", "--model", "tiny-gpt", "--steps", "1", "--seq-len", "128", "--micro-batch", "8", .. head,
            "--runs-dir", _root.Combine("runs"), "--run-id", "h", "--json"]);

        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var settings = JsonNode.Parse(File.ReadAllText(_root.Combine("runs", "h", "settings.json")))!["settings"]!;
        Assert.Equal(expected, settings["head_loss"]!.GetValue<string>());
    }
}
