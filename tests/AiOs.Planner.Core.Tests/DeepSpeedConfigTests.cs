using System.Text.Json.Nodes;
using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class DeepSpeedConfigTests
{
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("llama-2-7b");

    private static readonly TrainingSettings Infinity = new()
    {
        ZeroStage = ZeroStage.Infinity,
        ParamOffload = OffloadTier.Nvme,
        OptimizerOffload = OffloadTier.Nvme,
        NvmePath = "/local_nvme",
        MicroBatch = 4,
        GradAccumulation = 8,
        PipelineRead = true,
        Aio = new AioSettings { BlockSize = Bytes.FromKiB(512), QueueDepth = 16, IntraOpParallelism = 4 },
    };

    [Fact]
    public void Given_nvme_offload_When_emitted_Then_aio_is_top_level_with_intra_op_parallelism_and_never_thread_count()
    {
        var config = DeepSpeedConfig.Build(Llama, Infinity, gpusPerNode: 8, nodes: 2);
        var aio = config["aio"]!.AsObject();
        Assert.Equal(524288, aio["block_size"]!.GetValue<long>());
        Assert.Equal(16, aio["queue_depth"]!.GetValue<int>());
        Assert.Equal(4, aio["intra_op_parallelism"]!.GetValue<int>());
        Assert.False(aio.ContainsKey("thread_count"));
        Assert.False(config["zero_optimization"]!.AsObject().ContainsKey("aio"));
        Assert.DoesNotContain("thread_count", DeepSpeedConfig.ToJson(config));
    }

    [Theory]
    [InlineData(1, 1, 1, 1)]
    [InlineData(4, 8, 8, 2)]
    [InlineData(2, 3, 4, 1)]
    public void Given_batch_settings_When_emitted_Then_train_batch_size_is_micro_times_accumulation_times_world(int micro, int accumulation, int gpus, int nodes)
    {
        var config = DeepSpeedConfig.Build(Llama, Infinity with { MicroBatch = micro, GradAccumulation = accumulation }, gpus, nodes);
        Assert.Equal((long)micro * accumulation * gpus * nodes, config["train_batch_size"]!.GetValue<long>());
        Assert.Equal(micro, config["train_micro_batch_size_per_gpu"]!.GetValue<int>());
        Assert.Equal(accumulation, config["gradient_accumulation_steps"]!.GetValue<int>());
    }

    [Fact]
    public void Given_nvme_offload_When_emitted_Then_offload_sections_carry_path_and_buffers()
    {
        var zero = DeepSpeedConfig.Build(Llama, Infinity, 1, 1)["zero_optimization"]!.AsObject();
        Assert.Equal(3, zero["stage"]!.GetValue<int>());
        var param = zero["offload_param"]!.AsObject();
        Assert.Equal("nvme", param["device"]!.GetValue<string>());
        Assert.Equal("/local_nvme", param["nvme_path"]!.GetValue<string>());
        Assert.Equal(5, param["buffer_count"]!.GetValue<int>());
        Assert.Equal(100_000_000, param["buffer_size"]!.GetValue<long>());
        Assert.Equal(1_000_000_000, param["max_in_cpu"]!.GetValue<long>());
        var opt = zero["offload_optimizer"]!.AsObject();
        Assert.Equal("nvme", opt["device"]!.GetValue<string>());
        Assert.Equal(4, opt["buffer_count"]!.GetValue<int>());
        Assert.True(opt["pipeline_read"]!.GetValue<bool>());
        Assert.False(opt["pipeline_write"]!.GetValue<bool>());
    }

    [Fact]
    public void Given_zero2_with_cpu_optimizer_When_emitted_Then_there_is_no_offload_param_and_no_aio()
    {
        var s = new TrainingSettings { ZeroStage = ZeroStage.Zero2, OptimizerOffload = OffloadTier.Cpu };
        var config = DeepSpeedConfig.Build(Llama, s, 1, 1);
        var zero = config["zero_optimization"]!.AsObject();
        Assert.Equal(2, zero["stage"]!.GetValue<int>());
        Assert.False(zero.ContainsKey("offload_param"));
        Assert.Equal("cpu", zero["offload_optimizer"]!["device"]!.GetValue<string>());
        Assert.False(zero["offload_optimizer"]!.AsObject().ContainsKey("nvme_path"));
        Assert.False(config.ContainsKey("aio"));
    }

    [Theory]
    [InlineData(Precision.Bf16, "bf16", "fp16")]
    [InlineData(Precision.Fp16, "fp16", "bf16")]
    public void Given_a_half_precision_When_emitted_Then_exactly_that_section_is_enabled(Precision precision, string on, string off)
    {
        var config = DeepSpeedConfig.Build(Llama, Infinity with { Precision = precision }, 1, 1);
        Assert.True(config[on]!["enabled"]!.GetValue<bool>());
        Assert.False(config.ContainsKey(off));
    }

    [Fact]
    public void Given_fp32_When_emitted_Then_no_precision_section_is_enabled()
    {
        var config = DeepSpeedConfig.Build(Llama, Infinity with { Precision = Precision.Fp32 }, 1, 1);
        Assert.False(config.ContainsKey("bf16"));
        Assert.False(config.ContainsKey("fp16"));
    }

    [Fact]
    public void Given_a_config_When_written_as_text_Then_it_parses_back_to_the_same_object()
    {
        var config = DeepSpeedConfig.Build(Llama, Infinity, 8, 1);
        var parsed = JsonNode.Parse(DeepSpeedConfig.ToJson(config))!;
        Assert.True(JsonNode.DeepEquals(config, parsed));
    }
}
