using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

public sealed class HostMemoryEstimateTests
{
    [Fact]
    public void Given_EverythingOnNvme_When_Estimated_Then_ItIsStagingOptimizerBuffersAndOneGradientAndNothingPerParameter()
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
        static long Page(long bytes) => (bytes + 4095) / 4096 * 4096;

        var items = HostMemoryEstimate.Items(spec, s).ToDictionary(i => i.What, i => i.Size.Value);

        Assert.Equal(Page(4 * layer) * 3 + Page(4 * outer), items["parameter staging buffers"]);
        // The engine's sub-group pipeline has one slot of [state | gradient] without pipeline_read (optimizer_buffer_count is
        // DeepSpeed's), and keeps the buffer the swap files were first written through.
        Assert.Equal(Page(16 * 1000), items["optimizer swap buffers"]);
        Assert.Equal(Page(12 * 1000), items["optimizer start-up buffer"]);
        Assert.Equal(Page(4 * Math.Max(layer, outer)), items["gradient buffer"]);
        Assert.DoesNotContain("unattributed", items.Keys);
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
