using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's device peak in backward: a layer's backward holds its output, the gradient it was given and its input's
/// gradient besides its saved activations, and both trainers free them after it (until 2026-12-05 every layer's output and
/// input gradient stayed in the micro-batch's dispose scope until the embedding's backward, 2 per layer); with parameters on
/// the device and something else streaming, autograd's gradients live only until packed for their download.
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
    public void Given_a_streamed_run_whose_gradient_downloads_outweigh_its_head_When_planned_Then_backward_holds_three_layer_inputs_not_two_per_layer()
    {
        // llama-3-8b, 8,192 tokens: two layers' fp32 gradient downloads (2.4 GiB) outweigh the fused head (1.6 GiB).
        var m = ModelCatalog.Default.Load("llama-3-8b");
        var plan = EngineMemory.Plan(m, H100, Streamed);

        Assert.Equal("backward", plan.GpuPeakPhase);
        Assert.Equal(Input(m, Streamed) * 3, plan.Gpu.Of(EngineMemory.KeptBackwardItem));
    }

    [Fact]
    public void Given_gpt2_xl_streamed_at_micro_batch_8_with_the_fused_head_When_planned_Then_the_loss_and_a_layers_backward_are_not_summed()
    {
        // No layer is recomputed at the loss and no autograd gradient exists then (LayerwiseTrainer.Forward runs under no_grad);
        // a layer's backward holds the recomputed layer, what it keeps, the gradients and the downloads, and the logits are gone.
        // Until 2026-12-06 the recomputed layer and the slots' gradients were priced at the loss too (0.4 GiB here).
        var plan = EngineMemory.Plan(Xl, H100, Streamed);

        Assert.Equal("backward", plan.GpuPeakPhase);
        Assert.Equal(Bytes.Zero, plan.Gpu.Of("logits and loss"));
        Assert.Equal(Input(Xl, Streamed) * 3, plan.Gpu.Of(EngineMemory.KeptBackwardItem));
        Assert.True(plan.Gpu.Of("recomputed layer") > Bytes.Zero);
        // Common to both moments: two slots' parameters, the outer block's and every layer's input.
        Bytes common = Bytes.OfElements(2 * Xl.LayerParameters + EngineMemory.OuterElements(Xl), 2) + Input(Xl, Streamed) * Xl.NumLayers;
        Bytes head = EngineHeadLoss.PeakBytes(Xl, Streamed, 8L * 1024, fused: true, gpu: true) - Input(Xl, Streamed);
        Assert.True(plan.Gpu.Peak - plan.GpuReserve - common > head);
    }

    [Fact]
    public void Given_the_unfused_head_streamed_When_planned_Then_its_logits_and_a_layers_backward_are_both_on_the_device()
    {
        // The unfused head's large blocks take segments of their own beside the backward's (EngineMemory: the gpt2-xl runs of
        // 2026-12-05/06 on the H100 VM and the H200 were 11% above the larger of the two moments).
        var gpt2 = ModelCatalog.Default.Load("gpt2");
        var s = Streamed with { MicroBatch = 1, HeadLoss = HeadLoss.Unfused };
        var plan = EngineMemory.Plan(gpt2, H100, s);
        var fused = EngineMemory.Plan(gpt2, H100, s with { HeadLoss = HeadLoss.Fused });

        Assert.True(plan.Gpu.Of("logits and loss") > Bytes.Zero);
        Assert.Equal(Input(gpt2, s) * 3, plan.Gpu.Of(EngineMemory.KeptBackwardItem));
        Assert.True(plan.Gpu.Of("recomputed layer") > Bytes.Zero);
        // One layer's gradients until packed, the head weight's and the final norm's from the loss's backward.
        Assert.Equal(Bytes.OfElements(gpt2.LayerParameters + (long)gpt2.VocabSize * gpt2.HiddenSize + gpt2.NormParameters, 2), plan.Gpu.Of("gradients"));
        // The fused head's moments are not summed: only one of them is listed.
        Assert.True(fused.Gpu.Of("logits and loss") == Bytes.Zero || fused.Gpu.Of("recomputed layer") == Bytes.Zero);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_a_resident_gpt2_xl_run_with_the_fused_head_When_planned_Then_the_end_of_forward_sets_the_peak_with_or_without_checkpointing(bool checkpointing)
    {
        // Under checkpointing backward held 2.3 GiB (two layer inputs per layer) and set the peak; three layer inputs are below
        // even the fused head of a 256-token vocabulary (its states and their gradients), so the loss sets it.
        var s = Streamed with { ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, ZeroStage = ZeroStage.Zero2, ActivationCheckpointing = checkpointing };
        foreach (ModelSpec m in new[] { Xl, Xl with { VocabSize = 256 } })
        {
            var plan = EngineMemory.Plan(m, H100, s);

            Assert.Equal("end of forward (loss)", plan.GpuPeakPhase);
            Assert.Equal(Bytes.Zero, plan.Gpu.Of(EngineMemory.KeptBackwardItem));
            Assert.True(plan.Gpu.Of("logits and loss") > Input(m, s) * 3);
        }
    }

    [Fact]
    public void Given_accumulation_When_a_later_micro_batchs_loss_sets_the_peak_Then_the_first_micro_batchs_last_two_downloads_are_still_on_the_device()
    {
        // CpuGradientStore settles a later micro-batch's unit only when that unit is downloaded again: layer 0's and the outer
        // block's fp32 copies from the first micro-batch stay through the next one's forward and loss (gpt2-large, 1 × 4).
        var m = ModelCatalog.Default.Load("gpt2-large");
        var s = Streamed with { MicroBatch = 1, GradAccumulation = 4, ActivationCheckpointing = false };
        var plan = EngineMemory.Plan(m, H100, s);

        Assert.Equal("head and loss", plan.GpuPeakPhase);
        Assert.Equal(Bytes.OfElements(m.LayerParameters + EngineMemory.OuterElements(m), 4), plan.Gpu.Of("gradient downloads in flight"));
        Assert.Equal(Bytes.Zero, plan.Gpu.Of("recomputed layer"));
    }

    [Fact]
    public void Given_parameters_on_the_device_and_the_optimizer_in_ram_When_planned_Then_only_one_layers_and_the_outer_blocks_gradients_are_priced()
    {
        var s = Streamed with { ParamOffload = OffloadTier.None };
        var plan = EngineMemory.Plan(Xl, H100, s);

        Assert.Equal(Bytes.OfElements(Xl.TotalParameters, 2), plan.Gpu.Of("parameters"));
        // One layer's until packed, and the head weight's and final norm's from the head's backward (the embedding's come after the layers).
        Assert.Equal(Bytes.OfElements(Xl.LayerParameters + (long)Xl.VocabSize * Xl.HiddenSize + Xl.NormParameters, 2), plan.Gpu.Of("gradients"));
    }
}
