using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's device peak in backward: each recomputed layer's output and its input's gradient stay in the micro-batch's
/// dispose scope until the embedding's backward (LayerwiseTrainer, and DeviceTrainer under checkpointing); with parameters
/// on the device and something else streaming, autograd's gradients live only until packed for their download.
/// </summary>
public class EngineBackwardMemoryTests
{
    private static readonly HardwareProfile H100 = ProfileCatalog.Default.Load("h100-1x-vm");
    private static readonly ModelSpec Xl = ModelCatalog.Default.Load("gpt2-xl");

    private static TrainingSettings Streamed => new()
    {
        ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity, ActivationCheckpointing = true,
        Precision = Precision.Bf16, MicroBatch = 8, SeqLen = 1024, HeadLoss = HeadLoss.Fused, Executor = ExecutorKind.Aios,
    };

    private static Bytes Input(ModelSpec m, TrainingSettings s) => new(2L * m.HiddenSize * s.MicroBatch * s.SeqLen);

    [Fact]
    public void Given_a_streamed_run_whose_layers_outweigh_its_head_When_planned_Then_the_peak_is_in_backward_with_two_tensors_per_layer()
    {
        var plan = EngineMemory.Plan(Xl, H100, Streamed);

        Bytes kept = Input(Xl, Streamed) * (2L * Xl.NumLayers);
        Assert.Equal(kept, plan.Gpu.Of(EngineMemory.KeptBackwardItem));
        Assert.Equal("backward", plan.GpuPeakPhase);
        Assert.Equal(Bytes.Zero, plan.Gpu.Of("logits and loss"));
    }

    [Fact]
    public void Given_one_sequence_and_the_full_logits_When_planned_Then_the_head_outweighs_what_backward_keeps_and_sets_the_peak()
    {
        // gpt2, 1,024 tokens: full logits ~0.5 GB against 38 MB kept and 93 MB of bf16 downloads.
        var s = Streamed with { MicroBatch = 1, HeadLoss = HeadLoss.Unfused };
        var plan = EngineMemory.Plan(ModelCatalog.Default.Load("gpt2"), H100, s);

        Assert.Equal(Bytes.Zero, plan.Gpu.Of(EngineMemory.KeptBackwardItem));
        Assert.True(plan.Gpu.Of("logits and loss") > Bytes.Zero);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_a_resident_run_When_planned_Then_only_checkpointing_adds_the_kept_outputs_and_gradients(bool checkpointing)
    {
        var s = Streamed with { ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, ZeroStage = ZeroStage.Zero2, ActivationCheckpointing = checkpointing };
        var plan = EngineMemory.Plan(Xl, H100, s);

        Assert.Equal(checkpointing ? Input(Xl, s) * (2L * Xl.NumLayers) : Bytes.Zero, plan.Gpu.Of(EngineMemory.KeptBackwardItem));
    }

    [Fact]
    public void Given_parameters_on_the_device_and_the_optimizer_in_ram_When_planned_Then_only_one_layers_and_the_outer_blocks_gradients_are_priced()
    {
        var s = Streamed with { ParamOffload = OffloadTier.None };
        var plan = EngineMemory.Plan(Xl, H100, s);

        Assert.Equal(Bytes.OfElements(Xl.TotalParameters, 2), plan.Gpu.Of("parameters"));
        Assert.Equal(Bytes.OfElements(Xl.LayerParameters + EngineMemory.OuterElements(Xl), 2), plan.Gpu.Of("gradients"));
    }
}
