using System.Text.Json;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// <c>--head-loss</c> and <see cref="EngineHeadLoss.Resolve"/>: auto takes the unfused head (the faster) wherever the
/// engine's device plan with it fits the card or the limit, else the fused head where it lowers the bytes; the memory
/// plan and the step program price the head it picks. Limits are taken from the plan's own peaks, not guessed.
/// </summary>
public class HeadLossResolveTests
{
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");
    private static readonly HardwareProfile H100 = ProfileCatalog.Default.Load("h100-1x-vm");
    private const long Tokens = 8 * 1024;

    private static readonly TrainingSettings Resident = new() { MicroBatch = 8, SeqLen = 1024, Precision = Precision.Bf16 };

    private static Bytes Logits(MemoryPlan plan) => plan.Gpu.Of("logits and loss");

    /// <summary>A limit halfway between the plan's device peaks with the fused head and with the unfused one: only the fused head fits.</summary>
    private static Bytes OnlyFusedFits(ModelSpec m, TrainingSettings s)
    {
        Bytes fused = EngineMemory.DevicePeak(m, H100, s, fused: true), unfused = EngineMemory.DevicePeak(m, H100, s, fused: false);
        Assert.True(fused < unfused, $"fused {fused} against unfused {unfused}");
        return new Bytes((fused.Value + unfused.Value) / 2);
    }

    [Fact]
    public void Given_gpt2_mb8_on_an_80GB_card_When_resolved_Then_auto_runs_the_unfused_head_and_the_plan_prices_its_bytes()
    {
        Assert.True(EngineHeadLoss.FusingSavesBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16)); // the old rule fused here

        var plan = EngineMemory.Plan(Gpt2, H100, Resident);

        Assert.Equal(HeadLoss.Unfused, EngineHeadLoss.Resolve(Gpt2, H100, Resident));
        Assert.Equal(EngineHeadLoss.UnfusedBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16), Logits(plan));
        Assert.StartsWith("unfused head (auto", plan.Gpu.Items.Single(i => i.Name == "logits and loss").Note, StringComparison.Ordinal);
        Assert.Equal(EngineMemory.DevicePeak(Gpt2, H100, Resident, fused: false), plan.Gpu.Peak);
    }

    [Fact]
    public void Given_a_limit_only_the_fused_head_fits_When_resolved_Then_auto_runs_the_fused_head_and_the_plan_fits()
    {
        Bytes limit = OnlyFusedFits(Gpt2, Resident);

        var plan = EngineMemory.Plan(Gpt2, H100, Resident, limit);
        var held = GpuMemoryLimit.Apply(H100, limit);

        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, H100, Resident, limit));
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, held, Resident)); // the card held to the limit decides the same
        Assert.Equal(EngineHeadLoss.FusedBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16), Logits(plan));
        Assert.True(plan.Gpu.Fits);
        Assert.Contains("would not fit the device", plan.Gpu.Items.Single(i => i.Name == "logits and loss").Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_limit_exactly_the_unfused_peak_When_resolved_Then_the_unfused_head_fits_as_the_feasibility_check_counts()
    {
        Bytes unfused = EngineMemory.DevicePeak(Gpt2, H100, Resident, fused: false);

        Assert.Equal(HeadLoss.Unfused, EngineHeadLoss.Resolve(Gpt2, H100, Resident, unfused));
        Assert.True(EngineMemory.Plan(Gpt2, H100, Resident, unfused).Gpu.Fits);
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, H100, Resident, unfused - Bytes.FromMiB(1)));
    }

    [Fact]
    public void Given_a_forced_head_When_resolved_Then_it_is_kept_whatever_the_device()
    {
        Bytes limit = OnlyFusedFits(Gpt2, Resident);

        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, H100, Resident with { HeadLoss = HeadLoss.Fused }));
        var unfused = Resident with { HeadLoss = HeadLoss.Unfused };
        Assert.Equal(HeadLoss.Unfused, EngineHeadLoss.Resolve(Gpt2, H100, unfused, limit));
        var plan = EngineMemory.Plan(Gpt2, H100, unfused, limit);
        Assert.False(plan.Gpu.Fits); // forced, it is priced as it runs: over the limit
        Assert.StartsWith("unfused head (head_loss unfused)", plan.Gpu.Items.Single(i => i.Name == "logits and loss").Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_no_gpu_When_resolved_Then_the_byte_rule_decides()
    {
        var cpu = ProfileCatalog.Default.Load("ci-2core-24gb");
        var s = Resident with { SeqLen = 128, MicroBatch = 1 };
        bool saves = EngineHeadLoss.FusingSavesBytes(128, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16);

        Assert.Equal(saves ? HeadLoss.Fused : HeadLoss.Unfused, EngineHeadLoss.Resolve(Gpt2, cpu, s));
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, cpu, Resident));
    }

    [Fact]
    public void Given_gpt2_xl_offloaded_When_resolved_under_11G_and_under_a_limit_only_the_fused_head_fits_Then_unfused_then_fused()
    {
        var xl = ModelCatalog.Default.Load("gpt2-xl");
        var s = Offloaded;

        // The plan's unfused peak (8.6 GiB) fits 11 GiB: auto runs the unfused head there; only below it does the fused one run.
        Assert.True(EngineMemory.DevicePeak(xl, H100, s, fused: false) <= Bytes.FromGiB(11));
        Assert.Equal(HeadLoss.Unfused, EngineHeadLoss.Resolve(xl, H100, s, Bytes.FromGiB(11)));
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(xl, H100, s, OnlyFusedFits(xl, s)));
    }

    private static readonly TrainingSettings Offloaded = Resident with
    {
        ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ActivationCheckpointing = true, ZeroStage = ZeroStage.Infinity,
    };

    [Fact]
    public void Given_the_resolved_head_When_the_engines_step_program_is_built_Then_the_head_forward_holds_that_heads_bytes_and_its_work()
    {
        var held = GpuMemoryLimit.Apply(H100, OnlyFusedFits(Gpt2, Offloaded));

        (long Bytes, double Flops) Head(HardwareProfile hw)
        {
            var program = StepScheduler.Build(Gpt2, hw, Offloaded, false, ProgramShape.For(Offloaded, hw));
            var forward = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Head);
            return (forward.Effects.Where(e => e.Bytes > 0).Sum(e => e.Bytes), forward.Flops);
        }

        var (unfusedBytes, unfusedFlops) = Head(H100);
        var (fusedBytes, fusedFlops) = Head(held);
        Assert.Equal(EngineHeadLoss.UnfusedBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16).Value, unfusedBytes);
        Assert.Equal(EngineHeadLoss.FusedBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16).Value, fusedBytes);
        Assert.Equal(3 * unfusedFlops, fusedFlops, 6); // the fused head takes its gradients in forward
    }

    [Fact]
    public void Given_any_micro_batch_and_limit_When_auto_resolves_Then_it_is_unfused_exactly_when_the_unfused_plan_fits()
    {
        Prop.ForAll(Gen.Choose(1, 32).ToArbitrary(), Gen.Choose(2, 80).ToArbitrary(), (mb, gib) =>
        {
            var s = Resident with { MicroBatch = mb };
            Bytes limit = Bytes.FromGiB(gib);
            bool unfusedFits = EngineMemory.Plan(Gpt2, H100, s with { HeadLoss = HeadLoss.Unfused }, limit).Gpu.Fits;
            bool fusedFits = EngineMemory.Plan(Gpt2, H100, s with { HeadLoss = HeadLoss.Fused }, limit).Gpu.Fits;
            HeadLoss head = EngineHeadLoss.Resolve(Gpt2, H100, s, limit);
            bool autoFits = EngineMemory.Plan(Gpt2, H100, s, limit).Gpu.Fits;
            return (head == HeadLoss.Unfused) == (unfusedFits || !EngineHeadLoss.FusingSavesBytes((long)mb * 1024, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16))
                && autoFits == (unfusedFits || fusedFits);
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Given_settings_When_written_and_read_Then_head_loss_round_trips_by_name_and_a_bad_name_lists_the_choices()
    {
        string json = JsonSerializer.Serialize(Resident with { HeadLoss = HeadLoss.Unfused }, DescriptionJson.Options);
        Assert.Contains("\"head_loss\": \"unfused\"", json, StringComparison.Ordinal);
        Assert.Equal(HeadLoss.Unfused, JsonSerializer.Deserialize<TrainingSettings>(json, DescriptionJson.Options)!.HeadLoss);

        var e = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<TrainingSettings>(json.Replace("\"unfused\"", "\"chunked\"", StringComparison.Ordinal), DescriptionJson.Options));
        Assert.Contains("'chunked' is not one of auto, fused, unfused", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_the_fused_head_for_deepspeed_When_checked_Then_it_is_refused_naming_the_flag()
    {
        Assert.Contains("--head-loss fused", EngineHeadLoss.Problem(Resident with { HeadLoss = HeadLoss.Fused, Executor = ExecutorKind.DeepSpeed }));
        Assert.Null(EngineHeadLoss.Problem(Resident with { HeadLoss = HeadLoss.Fused }));
        Assert.Equal(HeadLoss.Unfused, EngineHeadLoss.Resolve(Gpt2, H100, Resident with { Executor = ExecutorKind.DeepSpeed }));
    }
}
