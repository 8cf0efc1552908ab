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
/// <c>--head-loss</c> and <see cref="EngineHeadLoss.Resolve"/>: on a GPU in bf16 or fp32, auto takes the fused head with its
/// kernel (the faster and the smaller) wherever its device plan fits the card or the limit; otherwise (fp16, or the fused
/// plan does not fit) the unfused head where its plan fits, else the fused head where it lowers the bytes. The memory plan
/// and the step program price the head it picks. Limits are taken from the plan's own peaks, not guessed.
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
    public void Given_gpt2_mb8_on_an_80GB_card_When_resolved_Then_auto_runs_the_kernels_fused_head_and_the_plan_prices_its_bytes()
    {
        var plan = EngineMemory.Plan(Gpt2, H100, Resident);

        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, H100, Resident));
        Assert.Equal(EngineHeadLoss.FusedBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16, kernel: true), Logits(plan));
        Assert.Contains("with its kernel", plan.Gpu.Items.Single(i => i.Name == "logits and loss").Note, StringComparison.Ordinal);
        Assert.Equal(EngineMemory.DevicePeak(Gpt2, H100, Resident, fused: true), plan.Gpu.Peak);
        // fp16 has no kernel: the unfused head, which fits, is the faster there.
        Assert.Equal(HeadLoss.Unfused, EngineHeadLoss.Resolve(Gpt2, H100, Fp16));
    }

    private static readonly TrainingSettings Fp16 = Resident with { Precision = Precision.Fp16 };

    [Fact]
    public void Given_fp16_and_a_limit_only_the_fused_head_fits_When_resolved_Then_auto_runs_the_fused_head_and_the_plan_fits()
    {
        Bytes limit = OnlyFusedFits(Gpt2, Fp16);

        var plan = EngineMemory.Plan(Gpt2, H100, Fp16, limit);
        var held = GpuMemoryLimit.Apply(H100, limit);

        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, H100, Fp16, limit));
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, held, Fp16)); // the card held to the limit decides the same
        Assert.Equal(EngineHeadLoss.FusedBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Fp16), Logits(plan));
        Assert.True(plan.Gpu.Fits);
        Assert.Contains("would not fit the device", plan.Gpu.Items.Single(i => i.Name == "logits and loss").Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_fp16_and_a_limit_exactly_the_unfused_peak_When_resolved_Then_the_unfused_head_fits_as_the_feasibility_check_counts()
    {
        Bytes unfused = EngineMemory.DevicePeak(Gpt2, H100, Fp16, fused: false);

        Assert.Equal(HeadLoss.Unfused, EngineHeadLoss.Resolve(Gpt2, H100, Fp16, unfused));
        Assert.True(EngineMemory.Plan(Gpt2, H100, Fp16, unfused).Gpu.Fits);
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, H100, Fp16, unfused - Bytes.FromMiB(1)));
    }

    [Fact]
    public void Given_bf16_and_a_limit_exactly_the_fused_peak_When_resolved_Then_the_fused_head_fits_and_below_it_the_byte_rule_decides()
    {
        Bytes fused = EngineMemory.DevicePeak(Gpt2, H100, Resident, fused: true);

        Assert.True(fused < EngineMemory.DevicePeak(Gpt2, H100, Resident, fused: false)); // with the kernel the fused head is the smaller here
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, H100, Resident, fused));
        Assert.True(EngineMemory.Plan(Gpt2, H100, Resident, fused).Gpu.Fits);
        // Neither fits below it: the byte rule (fused, at 8,192 tokens) and a plan that says it does not fit.
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(Gpt2, H100, Resident, fused - Bytes.FromMiB(1)));
        Assert.False(EngineMemory.Plan(Gpt2, H100, Resident, fused - Bytes.FromMiB(1)).Gpu.Fits);
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
    public void Given_gpt2_xl_offloaded_under_11G_When_resolved_Then_bf16_runs_the_kernels_fused_head_and_fp16_the_unfused_one()
    {
        var xl = ModelCatalog.Default.Load("gpt2-xl");
        var s = Offloaded;

        // Both heads' plans fit 11 GiB: in bf16 the kernel's fused head (the faster) runs; fp16 has no kernel and keeps the unfused one.
        Assert.True(EngineMemory.DevicePeak(xl, H100, s, fused: false) <= Bytes.FromGiB(11));
        Assert.Equal(HeadLoss.Fused, EngineHeadLoss.Resolve(xl, H100, s, Bytes.FromGiB(11)));
        Assert.Equal(HeadLoss.Unfused, EngineHeadLoss.Resolve(xl, H100, s with { Precision = Precision.Fp16 }, Bytes.FromGiB(11)));
    }

    private static readonly TrainingSettings Offloaded = Resident with
    {
        ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ActivationCheckpointing = true, ZeroStage = ZeroStage.Infinity,
    };

    [Fact]
    public void Given_each_head_When_the_engines_step_program_is_built_Then_the_head_forward_holds_that_heads_bytes_and_its_work()
    {
        (long Bytes, double Flops, double Elementwise, double BackwardFlops) Head(TrainingSettings s)
        {
            var program = StepScheduler.Build(Gpt2, H100, s, false, ProgramShape.For(s, H100));
            var forward = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Head);
            var backward = program.Ops.First(o => o.Kind == OpKind.Backward && o.Unit.Kind == UnitKind.Head);
            return (forward.Effects.Where(e => e.Bytes > 0).Sum(e => e.Bytes), forward.Flops, forward.ElementwiseBytes, backward.Flops);
        }

        foreach (var placement in new[] { Resident, Offloaded })
        {
            var unfused = Head(placement with { HeadLoss = HeadLoss.Unfused });
            var fused = Head(placement with { HeadLoss = HeadLoss.Fused });
            Assert.Equal(EngineHeadLoss.UnfusedBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16).Value, unfused.Bytes);
            Assert.Equal(EngineHeadLoss.FusedBytes(Tokens, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16, kernel: true).Value, fused.Bytes);
            // The fused head takes its gradients in forward: three matmuls there, none in backward; with its kernel it moves
            // fewer element-wise bytes in forward than the unfused head's forward and backward together.
            Assert.Equal(3 * unfused.Flops, fused.Flops, 6);
            Assert.Equal(2 * unfused.Flops, unfused.BackwardFlops, 6);
            Assert.Equal(0, fused.BackwardFlops);
            Assert.True(fused.Elementwise < 3 * unfused.Elementwise, $"{fused.Elementwise} against the unfused {3 * unfused.Elementwise}");
        }
    }

    [Fact]
    public void Given_any_micro_batch_and_limit_When_auto_resolves_Then_it_is_fused_where_the_kernels_plan_fits_else_unfused_where_that_fits()
    {
        Prop.ForAll(Gen.Choose(1, 32).ToArbitrary(), Gen.Choose(2, 80).ToArbitrary(), (mb, gib) =>
        {
            var s = Resident with { MicroBatch = mb };
            Bytes limit = Bytes.FromGiB(gib);
            bool unfusedFits = EngineMemory.Plan(Gpt2, H100, s with { HeadLoss = HeadLoss.Unfused }, limit).Gpu.Fits;
            bool fusedFits = EngineMemory.Plan(Gpt2, H100, s with { HeadLoss = HeadLoss.Fused }, limit).Gpu.Fits;
            HeadLoss head = EngineHeadLoss.Resolve(Gpt2, H100, s, limit);
            bool autoFits = EngineMemory.Plan(Gpt2, H100, s, limit).Gpu.Fits;
            HeadLoss expected = fusedFits ? HeadLoss.Fused
                : unfusedFits ? HeadLoss.Unfused
                : EngineHeadLoss.FusingSavesBytes((long)mb * 1024, Gpt2.VocabSize, Gpt2.HiddenSize, Precision.Bf16, kernel: true) ? HeadLoss.Fused : HeadLoss.Unfused;
            return head == expected && autoFits == (unfusedFits || fusedFits);
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
