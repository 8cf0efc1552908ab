using System.Text.Json.Nodes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// DeepSpeed issue 1776 (Data/anchors/literature.json): 50B on one DGX-2, parameters and optimizer on NVMe, micro-batch 26
/// per GPU with activation checkpoints in CPU RAM (Megatron-LM's --checkpoint-in-cpu, DeepSpeed's cpu_checkpointing),
/// eager attention as Megatron-LM v1.1.5 computes it. Reported per iteration: forward 53.6 s, backward 152.7 s, optimizer 92.6 s.
/// </summary>
public class DeepSpeedIssue1776Tests
{
    private static readonly JsonNode Issue = LiteratureAnchors.Section("deepspeed_issue_1776");
    private static readonly HardwareProfile Dgx2 = ProfileCatalog.Default.Load("dgx-2");

    private static ModelSpec Fifty() => ModelCatalog.Default.Load(Issue.Text("model")) with
    {
        NumHeads = Issue.Int("heads"), NumKvHeads = Issue.Int("heads"), Dropout = Issue.Number("dropout"),
    };

    private static TrainingSettings Settings(OffloadTier checkpoints) => SettingsRules.Resolve(new TrainingSettings
    {
        Executor = ExecutorKind.DeepSpeed, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme",
        ActivationCheckpointing = true, ActivationOffload = checkpoints, EagerAttention = true, Precision = Precision.Fp16,
        MicroBatch = Issue.Int("micro_batch"), BufferSize = 500_000_000, SubGroupSize = 100_000_000, PipelineRead = true, PipelineWrite = true,
    }, stageGiven: false);

    [Fact]
    public void Given_checkpoints_on_the_device_When_planned_Then_gpu_memory_refuses_micro_batch_26_and_names_cpu_checkpoints()
    {
        var plan = TrainingPlanner.Plan(Fifty(), Dgx2, Settings(OffloadTier.None), new PlanOptions { Simulate = false });

        Assert.False(plan.Feasible);
        var problem = Assert.Single(plan.Problems);
        Assert.StartsWith("GPU memory", problem);
        Assert.Contains("--offload-activations cpu", problem);
    }

    [Fact]
    public void Given_checkpoints_in_cpu_ram_When_planned_Then_micro_batch_26_fits_and_host_ram_holds_every_layers_checkpoint()
    {
        var model = Fifty();
        var s = Settings(OffloadTier.Cpu);
        var plan = TrainingPlanner.Plan(model, Dgx2, s, new PlanOptions { Simulate = false });

        Assert.True(plan.Feasible, string.Join("; ", plan.Problems));
        // Every layer's input (26 × 1024 tokens × 8192 × 2 bytes) per process, 16 processes on the node.
        Bytes perLayer = Bytes.OfElements((long)s.MicroBatch * s.SeqLen * model.HiddenSize, 2);
        Assert.Equal(perLayer * ((long)model.NumLayers * 16), plan.Memory.CpuPageable.Of("activation checkpoints"));
        Assert.Equal(perLayer * 2, plan.Memory.Gpu.Of("activations"));
    }

    [Fact]
    public void Given_checkpoints_in_cpu_ram_When_simulated_Then_forward_backward_and_optimizer_are_each_within_25_percent_and_bounds_are_shown()
    {
        var plan = TrainingPlanner.Plan(Fifty(), Dgx2, Settings(OffloadTier.Cpu));
        var phases = plan.Step!.Phases;

        // Predicted 42.9 s, 120.3 s, 90.4 s (2026-12-05): 20–21% under in forward and backward, as the reporter's ~35 TFLOP/s
        // per GPU sits under the paper's rate that the profile's V100 figures give; the optimizer is NVMe-bound and agrees.
        Assert.InRange(phases.Forward.Seconds / Issue.Number("forward_s"), 0.75, 1.25);
        Assert.InRange(phases.Backward.Seconds / Issue.Number("backward_s"), 0.75, 1.25);
        Assert.InRange(phases.Optimizer.Seconds / Issue.Number("optimizer_s"), 0.75, 1.25);
        Assert.Contains(StepBounds.Of(plan), b => b.Resource == "nvme");
    }

    [Fact]
    public void Given_checkpoints_in_cpu_ram_When_simulated_Then_the_copies_cross_pcie_and_lengthen_the_passes()
    {
        // Memory permitting (micro-batch 8 fits both ways), the copies are the only difference: forward pays one per layer.
        var model = Fifty();
        var onDevice = Simulation.Simulator.Predict(model, Dgx2, Settings(OffloadTier.None) with { MicroBatch = 8 });
        var inRam = Simulation.Simulator.Predict(model, Dgx2, Settings(OffloadTier.Cpu) with { MicroBatch = 8 });

        Bytes checkpoints = Bytes.OfElements(8L * 1024 * model.HiddenSize, 2) * model.NumLayers;
        Assert.Equal(checkpoints, inRam.Traffic.D2h - onDevice.Traffic.D2h);
        Assert.Equal(checkpoints, inRam.Traffic.H2d - onDevice.Traffic.H2d);
        Assert.True(inRam.Phases.Forward > onDevice.Phases.Forward);
        Assert.True(inRam.Phases.Backward > onDevice.Phases.Backward);
    }
}
