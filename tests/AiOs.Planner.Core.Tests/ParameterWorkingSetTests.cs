using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>DeepSpeed's module-by-module working set, memory-centric tiling and CPU checkpoints (issue 14 item 5).</summary>
public class ParameterWorkingSetTests
{
    private static readonly ModelSpec OneT = ModelCatalog.Default.Load("zero-infinity-1t");
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("llama-2-70b");
    private static readonly string[] ProfileNames = ["dgx-2", "dgx-a100", "h200-1x"];
    private static readonly string[] ModelNames = ["zero-infinity-1t", "zero-infinity-0.1t", "llama-2-70b", "gpt2-xl"];
    private static readonly TrainingSettings Zero3 = new() { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero3 };

    [Fact]
    public void Given_no_tiling_When_sized_Then_the_tile_is_deepspeeds_largest_module_and_no_block_is_held()
    {
        var ws = ParameterWorkingSet.For(Llama, Zero3);

        Assert.Equal(DeepSpeedModules.LargestModuleParameters(Llama), ws.Tile);
        Assert.True(ws.Live < Llama.LayerParameters, $"live {ws.Live:N0} of a {Llama.LayerParameters:N0}-element block");
        Assert.Equal(3 * ws.Tile, ws.GradientBuckets);
    }

    [Fact]
    public void Given_a_tiling_factor_When_sized_Then_the_layer_matrices_shrink_by_it_but_the_embedding_is_not_tiled()
    {
        long ffn = (long)OneT.HiddenSize * OneT.FfnSize + OneT.FfnSize;

        Assert.Equal((ffn + 1) / 2, ParameterWorkingSet.LargestTile(OneT, 2));
        // From 3 tiles on the FFN tile (874M) is below the vocabulary embedding (1.29B), which stays whole.
        Assert.Equal((long)OneT.VocabSize * OneT.HiddenSize, ParameterWorkingSet.LargestTile(OneT, 3));
    }

    [Fact]
    public void Given_the_prefetch_bucket_and_max_live_When_sized_Then_prefetch_is_the_bucket_overshot_by_a_module_and_capped_by_max_live()
    {
        long tile = ParameterWorkingSet.LargestTile(Llama, 1);

        Assert.Equal(ParameterWorkingSet.DeepSpeedPrefetchBucket - 1 + tile, ParameterWorkingSet.For(Llama, Zero3).Prefetched);
        Assert.Equal(0, ParameterWorkingSet.For(Llama, Zero3 with { PrefetchDepth = 0 }).Prefetched);
        Assert.Equal(0, ParameterWorkingSet.For(Llama, Zero3 with { PrefetchBucketSize = 0 }).Prefetched);
        Assert.Equal(10_000_000, ParameterWorkingSet.For(Llama, Zero3 with { MaxLiveParameters = tile + 10_000_000 }).Prefetched);
        // Never below the module about to compute.
        Assert.Equal(tile, ParameterWorkingSet.For(Llama, Zero3 with { MaxLiveParameters = 1 }).Live);
    }

    [Fact]
    public void Given_the_persistence_threshold_When_sized_Then_only_tensors_at_or_below_it_persist()
    {
        var gpt = ModelCatalog.Default.Load("gpt2-xl");
        long h = gpt.HiddenSize;

        Assert.Equal(0, ParameterWorkingSet.For(gpt, Zero3 with { ParamPersistenceThreshold = h - 1 }).Persistent);
        // Norms and the h-sized biases (4 + 2 per layer, and the final norm's 2); the 3h QKV bias and the 4h FFN bias are above.
        Assert.Equal(6 * h * gpt.NumLayers + 2 * h, ParameterWorkingSet.For(gpt, Zero3 with { ParamPersistenceThreshold = h }).Persistent);
    }

    [Fact]
    public void Given_any_zero3_plan_When_the_tiling_factor_grows_Then_gpu_memory_never_grows()
    {
        var profiles = ProfileNames.Select(ProfileCatalog.Default.Load).ToArray();
        var models = ModelNames.Select(ModelCatalog.Default.Load).ToArray();
        var cases = from m in Gen.Elements(models) from hw in Gen.Elements(profiles) from t in Gen.Choose(1, 64)
                    from micro in Gen.Choose(1, 8) from cpu in Gen.Elements(true, false) select (m, hw, t, micro, cpu);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            var s = Zero3 with
            {
                ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ActivationCheckpointing = true, MicroBatch = c.micro,
                TilingFactor = c.t, ActivationOffload = c.cpu ? OffloadTier.Cpu : OffloadTier.None,
            };
            return MemoryPlanner.Plan(c.m, c.hw, s with { TilingFactor = c.t + 1 }).Gpu.Peak <= MemoryPlanner.Plan(c.m, c.hw, s).Gpu.Peak;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Given_cpu_checkpoints_When_planned_Then_the_device_drops_and_host_ram_rises_by_the_checkpoints()
    {
        var hw = ProfileCatalog.Default.Load("dgx-a100");
        var s = Zero3 with { ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ActivationCheckpointing = true, MicroBatch = 4, GpusPerNode = 1 };
        var onDevice = MemoryPlanner.Plan(Llama, hw, s);
        var inRam = MemoryPlanner.Plan(Llama, hw, s with { ActivationOffload = OffloadTier.Cpu });

        var perLayer = Units.Bytes.OfElements(4L * 1024 * Llama.HiddenSize, 2);
        Assert.Equal(perLayer * Llama.NumLayers, onDevice.Gpu.Of("activations"));
        Assert.Equal(perLayer * 2, inRam.Gpu.Of("activations"));
        Assert.Equal(perLayer * Llama.NumLayers, inRam.CpuPageable.Of("activation checkpoints"));
        Assert.Equal(onDevice.CpuPeak + perLayer * Llama.NumLayers, inRam.CpuPeak);
    }
}
