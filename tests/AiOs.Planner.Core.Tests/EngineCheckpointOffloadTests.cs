using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Activation checkpoints in CPU RAM as the bundled engine executes them (issue 14 item 5): its program copies each layer's
/// input out after its forward and back before its recompute, with at most two on the device, and its memory plan counts
/// two on the device and every layer's in (page-locked) host RAM.
/// </summary>
public class EngineCheckpointOffloadTests
{
    private static readonly ModelSpec Gpt = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");
    private static readonly HardwareProfile Cpu = ProfileCatalog.Default.Load("ci-2core-24gb");

    private static TrainingSettings Offloaded(int accumulation, OffloadTier activations = OffloadTier.Cpu) => new()
    {
        Executor = ExecutorKind.Aios, ZeroStage = ZeroStage.Zero3, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu,
        ActivationCheckpointing = true, ActivationOffload = activations, MicroBatch = 8, SeqLen = 1024, Precision = Precision.Bf16,
        GradAccumulation = accumulation, PrefetchDepth = 1,
    };

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(2, false)]
    public void Given_cpu_checkpoints_in_the_engines_shape_When_built_Then_one_copy_out_per_layer_forward_and_one_copy_back_per_recompute(int accumulation, bool gpu)
    {
        var s = Offloaded(accumulation);
        var program = StepScheduler.Build(Gpt, gpu ? H200 : Cpu, s, false, ProgramShape.Engine);
        var ops = program.Ops;
        long bytes = (long)s.MicroBatch * s.SeqLen * Gpt.HiddenSize * s.ParamBytes;

        var forwards = ops.Where(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Layer).ToList();
        var outs = ops.Where(o => o.Kind == OpKind.ActivationOffload).ToList();
        var recomputes = ops.Where(o => o.Kind == OpKind.Recompute).ToList();
        var backs = ops.Where(o => o.Kind == OpKind.ActivationFetch).ToList();
        Assert.Equal(Gpt.NumLayers * accumulation, forwards.Count);
        Assert.Equal(forwards.Select(f => (f.Unit, f.MicroBatch)), outs.Select(o => (o.Unit, o.MicroBatch)));
        Assert.Equal(recomputes.Select(r => (r.Unit.Number, r.MicroBatch)).Order(), backs.Select(b => (b.Unit.Number, b.MicroBatch)).Order());
        Assert.All(outs, o => Assert.True(o.Resource == ResourceKind.D2h && o.Phase == StepPhase.Forward && o.Bytes.Value == bytes));
        Assert.All(backs, b => Assert.True(b.Resource == ResourceKind.H2d && b.Phase == StepPhase.Backward && b.Bytes.Value == bytes));
        Operation Find(OpKind kind, int layer, int mb) => ops.Single(o => o.Kind == kind && o.Unit == UnitId.Layer(layer) && o.MicroBatch == mb);
        for (int mb = 0; mb < accumulation; mb++)
            for (int i = 0; i < Gpt.NumLayers; i++)
            {
                // Out after its own forward; the forward two layers on waits for it (two checkpoints on the device), the next one does not.
                Assert.Equal([Find(OpKind.Forward, i, mb).Id], Find(OpKind.ActivationOffload, i, mb).Deps);
                if (i + 2 < Gpt.NumLayers) Assert.Contains(Find(OpKind.ActivationOffload, i, mb).Id, Find(OpKind.Forward, i + 2, mb).Deps);
                if (i + 1 < Gpt.NumLayers) Assert.DoesNotContain(Find(OpKind.ActivationOffload, i, mb).Id, Find(OpKind.Forward, i + 1, mb).Deps);
                // Back after its copy out and, below the top two, after the backward two layers up: never after the recompute just above it.
                var back = Find(OpKind.ActivationFetch, i, mb);
                int[] expected = i + 2 < Gpt.NumLayers ? [Find(OpKind.ActivationOffload, i, mb).Id, Find(OpKind.Backward, i + 2, mb).Id] : [Find(OpKind.ActivationOffload, i, mb).Id];
                Assert.Equal(expected, back.Deps);
                Assert.Contains(back.Id, Find(OpKind.Recompute, i, mb).Deps);
                if (i + 1 < Gpt.NumLayers) Assert.True(back.Id < Find(OpKind.Recompute, i + 1, mb).Id, "the copy back is queued ahead of the recompute above it");
            }
    }

    [Fact]
    public void Given_no_cpu_checkpoints_or_deepspeeds_shape_on_a_cpu_When_built_Then_no_checkpoint_moves()
    {
        Assert.DoesNotContain(StepScheduler.Build(Gpt, H200, Offloaded(1, OffloadTier.None), false, ProgramShape.Engine).Ops,
            o => o.Kind is OpKind.ActivationOffload or OpKind.ActivationFetch);
        Assert.DoesNotContain(StepScheduler.Build(Gpt, Cpu, Offloaded(1), false, ProgramShape.DeepSpeed).Ops,
            o => o.Kind is OpKind.ActivationOffload or OpKind.ActivationFetch);
    }

    [Fact]
    public void Given_cpu_checkpoints_When_the_engine_is_planned_Then_the_device_holds_two_layer_inputs_fewer_by_the_rest_and_host_ram_holds_every_layers_pinned()
    {
        var with = EngineMemory.Plan(Gpt, H200, Offloaded(1), Bytes.FromGiB(11));
        var without = EngineMemory.Plan(Gpt, H200, Offloaded(1, OffloadTier.None), Bytes.FromGiB(11));
        long input = 8L * 1024 * Gpt.HiddenSize * 2;

        Bytes Activations(MemoryPlan p) => p.Gpu.Items.Single(i => i.Name == "activations").Bytes;
        Assert.Equal(input * (Gpt.NumLayers - 2), (Activations(without) - Activations(with)).Value);
        var host = with.CpuPinned.Items.Single(i => i.Name == "activation checkpoints");
        Assert.Equal((input + 4095) / 4096 * 4096 * Gpt.NumLayers, host.Bytes.Value);
        Assert.DoesNotContain(without.CpuPinned.Items, i => i.Name == "activation checkpoints");
        Assert.True(with.Gpu.Peak < without.Gpu.Peak);
    }

    [Fact]
    public void Given_cpu_checkpoints_on_a_cpu_device_When_the_engine_is_planned_Then_the_host_copies_are_pageable()
    {
        var plan = EngineMemory.Plan(Gpt, Cpu, Offloaded(1));
        Assert.Contains(plan.CpuPageable.Items, i => i.Name == "activation checkpoints");
        Assert.DoesNotContain(plan.CpuPinned.Items, i => i.Name == "activation checkpoints");
    }
}
