using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's outer block holds a tied output matrix once (it is the embedding's): the program reads, uploads and writes
/// the block's unique parameters, as the engine's swap files and counters do (gpt2's plan read the 77.2 MB matrix twice).
/// </summary>
public class OuterBlockTiedTests
{
    private static readonly HardwareProfile Cpu = ProfileCatalog.Default.Load("ci-2core-24gb");

    private static TrainingSettings OnNvme() => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, GradientOffload = OffloadTier.Cpu,
        NvmePath = "/tmp", MaxInCpu = 0, MicroBatch = 1, SeqLen = 16, Precision = Precision.Bf16,
    };

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Given_parameters_on_nvme_When_the_engine_program_is_built_Then_the_outer_block_moves_its_unique_parameters_whether_tied_or_not(bool tied)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 2, TiedEmbeddings = tied };
        var program = StepScheduler.Build(spec, Cpu, OnNvme(), false, ProgramShape.Engine);

        long outer = EngineMemory.OuterElements(spec);
        var reads = program.Ops.Where(o => o.Kind == OpKind.ParamRead && o.Unit == UnitId.Outer).ToList();
        var writes = program.Ops.Where(o => o.Kind == OpKind.ParamWriteBack && o.Unit == UnitId.Outer).ToList();
        Assert.NotEmpty(reads);
        Assert.All(reads, o => Assert.Equal(2 * outer, o.Bytes.Value));
        Assert.Equal(2 * outer, writes.Sum(o => o.Bytes.Value));
        // The whole model's parameter files are read once per pass over them and written once: no byte counted twice.
        Assert.Equal(2 * spec.TotalParameters, program.Ops.Where(o => o.Kind == OpKind.ParamWriteBack).Sum(o => o.Bytes.Value));
    }
}
