using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

/// <summary>One definition of the engine's host need: what the planner's aios executor plans is what the engine's refusal check counts.</summary>
public sealed class HostMemoryDefinitionTests
{
    public static TheoryData<string, string, OffloadTier, OffloadTier> Cases()
    {
        var data = new TheoryData<string, string, OffloadTier, OffloadTier>();
        foreach (string model in new[] { "tiny-gpt", "gpt2", "gpt2-xl", "llama-2-7b" })
            foreach (string hardware in new[] { "ci-2core-24gb", "h200-1x-calibrated" })
                foreach (var (p, o) in new[] { (OffloadTier.Cpu, OffloadTier.Cpu), (OffloadTier.Nvme, OffloadTier.Nvme), (OffloadTier.Cpu, OffloadTier.Nvme), (OffloadTier.None, OffloadTier.Cpu) })
                    data.Add(model, hardware, p, o);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Given_a_placement_When_the_planner_and_the_engine_price_host_memory_Then_they_agree_to_the_byte(string model, string hardware, OffloadTier parameters, OffloadTier optimizer)
    {
        ModelSpec spec = ModelCatalog.Default.Load(model);
        // The engine counts this machine's cores (start-up makes units on them): the planner prices the same machine.
        HardwareProfile loaded = ProfileCatalog.Default.Load(hardware);
        HardwareProfile hw = loaded with { Cpu = loaded.Cpu with { Cores = Environment.ProcessorCount } };
        TrainingSettings s = new()
        {
            ParamOffload = parameters, OptimizerOffload = optimizer, ZeroStage = ZeroStage.Infinity, NvmePath = "/tmp", MicroBatch = 1, SeqLen = 128,
            Precision = Precision.Bf16, Executor = ExecutorKind.Aios,
        };

        Bytes planned = MemoryPlanner.Plan(spec, hw, s).CpuPeak;
        Bytes checkedByEngine = HostMemoryEstimate.Total(spec, s, gpu: hw.HasGpu);

        Assert.Equal(planned, checkedByEngine);
    }
}
