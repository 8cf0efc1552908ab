using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>The rules and config keys of tiling and CPU checkpoints, and the bundled engine's refusal of tiling and of CPU checkpoints on its resident trainer (issue 14 item 5).</summary>
public class MemoryCentricTilingTests
{
    private static readonly ModelSpec Gpt = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");
    private static readonly TrainingSettings Ds = new() { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero3, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ActivationCheckpointing = true };

    [Fact]
    public void Given_cpu_checkpoints_for_the_bundled_engine_When_checked_Then_the_layerwise_trainer_takes_them_and_the_resident_one_refuses_naming_offload_params()
    {
        var offloaded = Ds with { Executor = ExecutorKind.Aios, ActivationOffload = OffloadTier.Cpu };
        var resident = offloaded with { ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None };

        Assert.DoesNotContain(SettingsRules.Check(offloaded, Gpt, H200), p => p.Flag == "--offload-activations");
        Assert.Null(MemoryCentricTiling.EngineRefusal(offloaded));
        var problem = Assert.Single(SettingsRules.Check(resident, Gpt, H200), p => p.Flag == "--offload-activations");
        Assert.Contains("--offload-params cpu", problem.Message);
        Assert.Contains("--offload-params cpu", MemoryCentricTiling.EngineRefusal(resident));
        Assert.Contains("NVMe", MemoryCentricTiling.EngineRefusal(offloaded with { ActivationOffload = OffloadTier.Nvme }));
        Assert.Contains("--executor deepspeed", MemoryCentricTiling.EngineRefusal(Ds with { TilingFactor = 2 }));
        Assert.Null(MemoryCentricTiling.EngineRefusal(Ds));
    }

    [Theory]
    [InlineData(0, "--tiling-factor")]
    [InlineData(MemoryCentricTiling.MaxFactor + 1, "--tiling-factor")]
    public void Given_a_tiling_factor_out_of_range_When_checked_Then_the_flag_is_named(int factor, string flag) =>
        Assert.Contains(SettingsRules.Check(Ds with { TilingFactor = factor }, Gpt, H200), p => p.Flag == flag && p.Message.Contains("1.."));

    [Fact]
    public void Given_checkpoints_on_nvme_When_checked_Then_refused_and_cpu_checkpoints_without_checkpointing_change_nothing()
    {
        Assert.Contains(SettingsRules.Check(Ds with { ActivationOffload = OffloadTier.Nvme }, Gpt, H200), p => p.Flag == "--offload-activations");
        Assert.DoesNotContain(SettingsRules.Check(Ds with { ActivationOffload = OffloadTier.Cpu }, Gpt, H200), p => p.Flag == "--offload-activations");
        // No checkpoints, nothing to move: the tuner's candidates without checkpointing stay valid and unchanged.
        var plain = Ds with { ActivationCheckpointing = false };
        Assert.Empty(SettingsRules.Check(plain with { ActivationOffload = OffloadTier.Cpu }, Gpt, H200));
        Assert.Equal(MemoryPlanner.Plan(Gpt, H200, plain).Gpu.Peak, MemoryPlanner.Plan(Gpt, H200, plain with { ActivationOffload = OffloadTier.Cpu }).Gpu.Peak);
    }

    [Fact]
    public void Given_cpu_checkpoints_and_fetch_settings_When_the_config_is_written_Then_deepspeed_gets_its_own_keys()
    {
        var s = Ds with { ActivationOffload = OffloadTier.Cpu, PrefetchBucketSize = 20_000_000, MaxLiveParameters = 300_000_000, ParamPersistenceThreshold = 1_000 };
        var config = DeepSpeedConfig.Build(Gpt, s, 1, 1);
        var zero = config["zero_optimization"]!;

        Assert.True(config["activation_checkpointing"]!["cpu_checkpointing"]!.GetValue<bool>());
        Assert.Equal(20_000_000, zero["stage3_prefetch_bucket_size"]!.GetValue<long>());
        Assert.Equal(300_000_000, zero["stage3_max_live_parameters"]!.GetValue<long>());
        Assert.Equal(1_000, zero["stage3_param_persistence_threshold"]!.GetValue<long>());
        Assert.False(DeepSpeedConfig.Build(Gpt, Ds, 1, 1)["activation_checkpointing"]!["cpu_checkpointing"]!.GetValue<bool>());
        Assert.Equal(ParameterWorkingSet.DeepSpeedPrefetchBucket, DeepSpeedConfig.Build(Gpt, Ds, 1, 1)["zero_optimization"]!["stage3_prefetch_bucket_size"]!.GetValue<long>());
    }

    [Fact]
    public void Given_a_plan_that_fits_untiled_When_asked_for_the_smallest_factor_Then_it_is_one_and_nothing_is_advised()
    {
        Assert.Equal(1, MemoryCentricTiling.SmallestFittingFactor(Gpt, H200, Ds));
        Assert.Null(MemoryCentricTiling.Advice(Gpt, H200, Ds));
        Assert.Null(MemoryCentricTiling.SmallestFittingFactor(Gpt, H200, Ds with { Executor = ExecutorKind.Aios }));
    }
}
