using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>Every fix a plan suggests, applied, lowers the overflowing tier's need; none repeats a setting or invents GPUs.</summary>
public class PlanAdviceTests
{
    private static readonly ModelSpec[] Models = ModelCatalog.Default.Names().Select(ModelCatalog.Default.Load).Where(m => m.TotalParameters < 2e12).ToArray();
    private static readonly HardwareProfile[] Profiles = ProfileCatalog.Default.Names().Select(ProfileCatalog.Default.Load).Where(h => h.HasGpu).ToArray();

    private sealed record Case(ModelSpec Model, HardwareProfile Hardware, TrainingSettings Settings)
    {
        public override string ToString() => $"{Model.Name} on {Hardware.Name}: {Settings}";
    }

    private static readonly Gen<Case> CaseGen =
        from model in Gen.Elements(Models)
        from hardware in Gen.Elements(Profiles)
        from stage in Gen.Elements(ZeroStage.None, ZeroStage.Zero1, ZeroStage.Zero2, ZeroStage.Zero3, ZeroStage.Infinity)
        from param in Gen.Elements(OffloadTier.None, OffloadTier.Cpu)
        from optimizer in Gen.Elements(OffloadTier.None, OffloadTier.Cpu)
        from micro in Gen.Choose(1, 16)
        from seq in Gen.Elements(128, 512, 1024, 2048)
        from checkpointing in Gen.Elements(true, false)
        from prefetch in Gen.Choose(0, 3)
        from gpus in Gen.Choose(1, Math.Max(1, hardware.GpusPerNode))
        select new Case(model, hardware, new TrainingSettings
        {
            ZeroStage = stage,
            ParamOffload = stage is ZeroStage.Zero3 or ZeroStage.Infinity ? param : OffloadTier.None,
            OptimizerOffload = stage == ZeroStage.None ? OffloadTier.None : optimizer,
            MicroBatch = micro, SeqLen = Math.Min(seq, model.MaxSeqLen), ActivationCheckpointing = checkpointing,
            PrefetchDepth = prefetch, GpusPerNode = gpus, Nodes = 1,
        });

    [Fact]
    public void Given_a_random_plan_that_overflows_the_gpu_When_each_fix_is_applied_Then_it_is_valid_and_lowers_the_gpu_need() =>
        Prop.ForAll(CaseGen.ToArbitrary(), c =>
        {
            var before = TrainingPlanner.Plan(c.Model, c.Hardware, c.Settings, new PlanOptions { Simulate = false });
            if (before.SettingsProblems.Count > 0 || before.Memory.Gpu.Fits) return true;
            foreach (var fix in PlanAdvice.Gpu(c.Model, c.Hardware, c.Settings, before.Memory))
            {
                var s = fix.Apply(c.Settings);
                if (s == c.Settings) throw new InvalidOperationException($"{fix} changes nothing in {c}");
                var after = TrainingPlanner.Plan(c.Model, c.Hardware, s, new PlanOptions { Simulate = false });
                if (after.SettingsProblems.Count > 0) throw new InvalidOperationException($"{fix} makes {c} invalid: {string.Join("; ", after.SettingsProblems)}");
                if (!(after.Memory.Gpu.Peak < before.Memory.Gpu.Peak || after.Memory.Gpu.Fits))
                    throw new InvalidOperationException($"{fix} leaves GPU need at {after.Memory.Gpu.Peak} (was {before.Memory.Gpu.Peak}) for {c}");
            }
            return true;
        }).QuickCheckThrowOnFailure();

    [Fact]
    public void Given_a_one_gpu_profile_When_the_gpu_overflows_Then_zero3_for_several_gpus_is_not_advised()
    {
        var plan = TrainingPlanner.Plan(ModelCatalog.Default.Load("llama-2-13b"), ProfileCatalog.Default.Load("rtx4090-64gb-pcie4"), new TrainingSettings(), new PlanOptions { Simulate = false });

        var problem = Assert.Single(plan.CapacityProblems);
        Assert.DoesNotContain("several GPUs", problem);
        Assert.DoesNotContain(PlanAdvice.Gpu(plan.Model, plan.Hardware, plan.Settings, plan.Memory), f => f.Flags == "--zero-stage zero3");
    }

    [Fact]
    public void Given_parameters_offloaded_and_the_optimizer_on_the_gpu_When_it_overflows_Then_the_optimizer_offload_is_advised()
    {
        // DeepSpeed keeps the optimizer on the GPU here; the aios engine never does once parameters stream.
        var s = new TrainingSettings { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero3, ParamOffload = OffloadTier.Cpu, ActivationCheckpointing = true };
        var plan = TrainingPlanner.Plan(ModelCatalog.Default.Load("llama-2-13b"), ProfileCatalog.Default.Load("rtx4090-64gb-pcie4"), s, new PlanOptions { Simulate = false });

        var problem = Assert.Single(plan.CapacityProblems, p => p.StartsWith("GPU memory", StringComparison.Ordinal));
        Assert.DoesNotContain("Nothing left to offload", problem);
        Assert.Contains("--offload-optimizer cpu", problem);
    }
}
