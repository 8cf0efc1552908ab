using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>Host memory of gradient accumulation with gradients in RAM: later micro-batches download into the program's page-locked staging buffers, in turn.</summary>
public class EngineMemoryAccumulationTests
{
    private static readonly ModelSpec Large = ModelCatalog.Default.Load("gpt2-large");

    private static TrainingSettings Settings(int accumulation, Precision precision) => new()
    {
        ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity,
        MicroBatch = 1, SeqLen = 1024, Precision = precision, GradAccumulation = accumulation,
    };

    [Theory]
    [InlineData(Precision.Bf16, 2)]
    [InlineData(Precision.Fp32, 4)]
    public void Given_accumulation_with_gradients_in_ram_on_a_gpu_When_planned_Then_the_programs_pinned_staging_buffers_of_the_largest_unit_are_counted(Precision precision, int bytes)
    {
        var gpu = ProfileCatalog.Default.Load("h200-1x");
        var accumulating = EngineMemory.Plan(Large, gpu, Settings(4, precision));
        var single = EngineMemory.Plan(Large, gpu, Settings(1, precision));

        // The outer block (token and position embeddings, final norm) is gpt2-large's largest unit.
        long largest = Math.Max(Large.LayerParameters, Large.EmbeddingParameters + Large.HeadParameters);
        Assert.True(largest > Large.LayerParameters);
        Bytes staging = accumulating.CpuPinned.Of("gradient staging");
        int buffers = ProgramShape.Engine.GradientStagingBuffers;
        Assert.True(buffers >= 2);
        Assert.InRange(staging.Value, buffers * largest * bytes, buffers * (largest * bytes + 2 * 4096));
        Assert.Equal(Bytes.Zero, single.CpuPinned.Of("gradient staging"));
    }

    [Fact]
    public void Given_accumulation_on_a_cpu_device_When_planned_Then_no_staging_buffer_is_counted()
    {
        var items = EngineMemory.HostNeed(Large, Settings(4, Precision.Fp32), gpu: false);
        Assert.DoesNotContain(items, i => i.Item.Name == "gradient staging");
        Assert.Contains(items, i => i.Item.Name == "gradients"); // the plan has gradients in RAM: the absence is the device's doing
    }
}
