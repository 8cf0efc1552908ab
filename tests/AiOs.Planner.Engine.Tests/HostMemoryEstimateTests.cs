using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

public sealed class HostMemoryEstimateTests
{
    [Fact]
    public void Given_EverythingOnNvme_When_Estimated_Then_ItIsSlotsStagingOptimizerBuffersAndOneGradient()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings s = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Nvme,
            OptimizerOffload = OffloadTier.Nvme,
            BufferCount = 3,
            PrefetchDepth = 1,
            OptimizerBufferCount = 2,
            SubGroupSize = 1000,
        };
        long layer = spec.LayerParameters, outer = spec.EmbeddingParameters + spec.HeadParameters;

        Bytes total = HostMemoryEstimate.Total(spec, s);

        long expected = 4 * (2 * layer + outer) + 4 * (3 * layer + outer) + 2 * 4 * 1000 * 4 + 4 * Math.Max(layer, outer);
        Assert.Equal(expected, total.Value);
    }

    [Fact]
    public void Given_AModelWhoseOptimizerStatesExceedRam_When_Checked_Then_TheErrorSaysToOffloadTheOptimizer()
    {
        ModelSpec spec = ModelCatalog.Default.Load("gpt2-xl");
        TrainingSettings s = new() { ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, SeqLen = 128, Precision = Precision.Bf16 };

        var e = Assert.Throws<ArgumentException>(() => EngineSettings.Check(spec, s, new EngineOptions(), Bytes.FromGiB(8)));

        Assert.Contains("--offload-optimizer nvme", e.Message);
        Assert.Contains("host RAM", e.Message);
    }

    [Fact]
    public void Given_EnoughRam_When_Checked_Then_NothingIsThrown()
    {
        ModelSpec spec = ModelCatalog.Default.Load("gpt2-xl");
        TrainingSettings s = new() { ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/tmp", SeqLen = 128, SubGroupSize = 10_000_000 };

        EngineSettings.Check(spec, s, new EngineOptions(), Bytes.FromGiB(8));
    }
}
