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

/// <summary>Invariants of per-module fetch, tiling and CPU checkpoints in the simulated step (issue 14 item 5).</summary>
public class LiteraturePlanPropertiesTests
{
    private static readonly string[] ModelNames = ["gpt2", "gpt2-xl", "llama-2-7b", "tiny-llama"];
    private static readonly string[] ProfileNames = ["h200-1x", "dgx-a100", "dgx-2"];

    private static readonly Gen<(ModelSpec Model, HardwareProfile Hardware, TrainingSettings Settings)> Cases =
        from model in Gen.Elements(ModelNames.Select(ModelCatalog.Default.Load).ToArray())
        from hw in Gen.Elements(ProfileNames.Select(ProfileCatalog.Default.Load).ToArray())
        from gpus in Gen.Elements(1, 2)
        from param in Gen.Elements(OffloadTier.Cpu, OffloadTier.Nvme)
        from micro in Gen.Choose(1, 8)
        from tiles in Gen.Choose(1, 8)
        from prefetch in Gen.Choose(0, 2)
        from bucket in Gen.Elements<long?>(null, 0, 5_000_000, 200_000_000)
        from accumulation in Gen.Choose(1, 2)
        select (model, hw, new TrainingSettings
        {
            Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Infinity, ParamOffload = param, OptimizerOffload = param, NvmePath = "/nvme",
            ActivationCheckpointing = true, ActivationOffload = OffloadTier.Cpu, TilingFactor = tiles, MicroBatch = micro, SeqLen = 512,
            PrefetchDepth = prefetch, PrefetchBucketSize = bucket, GradAccumulation = accumulation, GpusPerNode = gpus,
            BufferSize = Math.Max(100_000_000, SwapBufferRule.Required(model, ExecutorKind.DeepSpeed)),
        });

    [Fact]
    public void Given_cpu_checkpoints_and_per_module_fetch_When_a_feasible_plan_is_simulated_Then_the_gpu_peak_stays_under_the_closed_form() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var plan = TrainingPlanner.Plan(c.Model, c.Hardware, c.Settings);
            if (!plan.Feasible || plan.Step is null) return true;
            return plan.Step.MemoryPeaks[MemoryTier.Gpu] <= plan.Memory.GpuAllocatedPeak;
        }).QuickCheckThrowOnFailure();

    [Fact]
    public void Given_cpu_checkpoints_When_the_program_is_built_Then_every_layer_copies_its_checkpoint_out_and_back_once_per_micro_batch() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var program = StepScheduler.Build(c.Model, c.Hardware, c.Settings);
            long checkpoint = (long)Math.Ceiling(ActivationModel.CheckpointBytesPerToken(c.Model, c.Settings) * c.Settings.MicroBatch * c.Settings.SeqLen);
            var outs = program.Ops.Where(o => o.Kind == OpKind.ActivationOffload).ToList();
            var backs = program.Ops.Where(o => o.Kind == OpKind.ActivationFetch).ToList();
            long expected = (long)c.Model.NumLayers * c.Settings.GradAccumulation;
            return outs.Count == expected && backs.Count == expected
                && outs.All(o => o.Bytes == new Bytes(checkpoint) && o.Resource == ResourceKind.D2h)
                && backs.All(o => o.Bytes == new Bytes(checkpoint) && o.Resource == ResourceKind.H2d);
        }).QuickCheckThrowOnFailure();
}
