using System.Text.Json.Nodes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>Invariants of the memory model over random models, machines and settings.</summary>
public class MemoryPropertiesTests
{
    private static readonly ModelSpec[] Models = ModelCatalog.Default.Names().Select(ModelCatalog.Default.Load).Where(m => m.TotalParameters < 2e12).ToArray();
    private static readonly HardwareProfile[] Profiles = ProfileCatalog.Default.Names().Select(ProfileCatalog.Default.Load).ToArray();

    private sealed record Case(ModelSpec Model, HardwareProfile Hardware, TrainingSettings Settings)
    {
        public override string ToString() => $"{Model.Name} on {Hardware.Name}: {Settings}";
    }

    private static readonly Gen<TrainingSettings> SettingsGen =
        from stage in Gen.Elements(ZeroStage.None, ZeroStage.Zero1, ZeroStage.Zero2, ZeroStage.Zero3, ZeroStage.Infinity)
        from param in Gen.Elements(OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme)
        from optimizer in Gen.Elements(OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme)
        from micro in Gen.Choose(1, 32)
        from seq in Gen.Elements(128, 512, 1024, 2048)
        from precision in Gen.Elements(Precision.Fp32, Precision.Bf16, Precision.Fp16)
        from checkpointing in Gen.Elements(true, false)
        from prefetch in Gen.Choose(0, 3)
        from pin in Gen.Elements(true, false)
        select new TrainingSettings
        {
            Executor = ExecutorKind.DeepSpeed,
            ZeroStage = stage,
            ParamOffload = stage is ZeroStage.Zero3 or ZeroStage.Infinity ? param : OffloadTier.None,
            OptimizerOffload = stage == ZeroStage.None ? OffloadTier.None : optimizer,
            NvmePath = "/nvme",
            MicroBatch = micro,
            SeqLen = seq,
            Precision = precision,
            ActivationCheckpointing = checkpointing,
            PrefetchDepth = prefetch,
            PinMemory = pin,
        };

    private static readonly Gen<Case> CaseGen =
        from model in Gen.Elements(Models)
        from hardware in Gen.Elements(Profiles)
        from settings in SettingsGen
        from gpus in Gen.Choose(1, Math.Max(1, hardware.GpusPerNode))
        select new Case(model, hardware, settings with { GpusPerNode = hardware.GpusPerNode > 0 ? gpus : null });

    private static void ForAll(Func<Case, bool> property) =>
        Prop.ForAll(CaseGen.ToArbitrary(), property).QuickCheckThrowOnFailure();

    private static MemoryPlan Plan(Case c) => MemoryPlanner.Plan(c.Model, c.Hardware, c.Settings);

    [Fact]
    public void Given_any_plan_When_the_micro_batch_grows_Then_no_tier_shrinks() => ForAll(c =>
    {
        var small = Plan(c);
        var large = Plan(c with { Settings = c.Settings with { MicroBatch = c.Settings.MicroBatch + 1 } });
        return large.GpuAllocatedPeak >= small.GpuAllocatedPeak && large.CpuPeak >= small.CpuPeak && large.Nvme.Peak == small.Nvme.Peak;
    });

    [Fact]
    public void Given_any_plan_When_the_sequence_grows_Then_no_tier_shrinks() => ForAll(c =>
    {
        var small = Plan(c);
        var large = Plan(c with { Settings = c.Settings with { SeqLen = c.Settings.SeqLen * 2 } });
        return large.GpuAllocatedPeak >= small.GpuAllocatedPeak && large.CpuPeak >= small.CpuPeak;
    });

    [Fact]
    public void Given_any_zero_plan_When_the_optimizer_moves_off_the_gpu_Then_gpu_memory_does_not_rise() => ForAll(c =>
    {
        if (c.Settings.ZeroStage == ZeroStage.None) return true;
        var onGpu = Plan(c with { Settings = c.Settings with { OptimizerOffload = OffloadTier.None } });
        var onCpu = Plan(c with { Settings = c.Settings with { OptimizerOffload = OffloadTier.Cpu } });
        var onNvme = Plan(c with { Settings = c.Settings with { OptimizerOffload = OffloadTier.Nvme } });
        return onCpu.Gpu.Peak <= onGpu.Gpu.Peak && onNvme.Gpu.Peak <= onGpu.Gpu.Peak;
    });

    [Fact]
    public void Given_any_zero3_plan_When_parameters_move_off_the_gpu_Then_gpu_memory_does_not_rise() => ForAll(c =>
    {
        var s = c.Settings with { ZeroStage = ZeroStage.Infinity };
        var onGpu = Plan(c with { Settings = s with { ParamOffload = OffloadTier.None } });
        var onCpu = Plan(c with { Settings = s with { ParamOffload = OffloadTier.Cpu } });
        var onNvme = Plan(c with { Settings = s with { ParamOffload = OffloadTier.Nvme } });
        return onCpu.Gpu.Peak <= onGpu.Gpu.Peak && onNvme.Gpu.Peak <= onGpu.Gpu.Peak;
    });

    [Fact]
    public void Given_any_plan_When_checkpointing_is_turned_on_Then_gpu_memory_does_not_rise() => ForAll(c =>
    {
        var without = Plan(c with { Settings = c.Settings with { ActivationCheckpointing = false } });
        var with = Plan(c with { Settings = c.Settings with { ActivationCheckpointing = true } });
        return with.GpuAllocatedPeak <= without.GpuAllocatedPeak;
    });

    [Fact]
    public void Given_any_plan_When_rendered_as_json_Then_every_total_equals_the_sum_of_its_breakdown() => ForAll(c =>
    {
        var doc = PlanDocument.Build(TrainingPlanner.Plan(c.Model, c.Hardware, c.Settings));
        var memory = doc["memory"]!.AsObject();
        long Sum(string tier) => memory["breakdown"]![tier]!.AsArray().Sum(i => i!["bytes"]!.GetValue<long>());
        long reserve = memory["breakdown"]!["gpu"]!.AsArray().Where(i => i!["name"]!.GetValue<string>() == "framework reserve").Sum(i => i!["bytes"]!.GetValue<long>());
        return memory["gpu_reserved_peak_bytes"]!.GetValue<long>() == Sum("gpu")
            && memory["gpu_peak_bytes"]!.GetValue<long>() == Sum("gpu") - reserve
            && memory["cpu_pinned_bytes"]!.GetValue<long>() == Sum("cpu_pinned")
            && memory["cpu_peak_bytes"]!.GetValue<long>() == Sum("cpu_pinned") + Sum("cpu_pageable")
            && memory["nvme_bytes"]!.GetValue<long>() == Sum("nvme");
    });

    [Fact]
    public void Given_any_plan_When_states_are_placed_Then_every_parameter_byte_is_somewhere() => ForAll(c =>
    {
        if (c.Settings.ZeroStage == ZeroStage.None) return true;
        var plan = Plan(c);
        int gpusPerNode = Math.Max(1, c.Settings.GpusPerNode ?? c.Hardware.GpusPerNode);
        long nodeShare = (c.Model.TotalParameters + gpusPerNode - 1) / gpusPerNode * gpusPerNode;
        int optimizerBytes = c.Settings.IsMixedPrecision ? 12 : 8;
        // Device items are per GPU; on a CPU-only machine they sit in pageable RAM as "device: …".
        long optimizer = plan.Gpu.Of("optimizer states").Value * gpusPerNode
            + plan.CpuPageable.Of("device: optimizer states").Value
            + plan.CpuPinned.Of("optimizer states").Value + plan.CpuPageable.Of("optimizer states").Value
            + plan.Nvme.Of("optimizer states").Value;
        return optimizer == nodeShare * optimizerBytes;
    });
}
