using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

public class MemoryPlannerTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");
    private static readonly HardwareProfile Dgx = ProfileCatalog.Default.Load("dgx-a100");

    private static ModelSpec Model(string name) => ModelCatalog.Default.Load(name);

    [Theory]
    // Peak allocated measured with PyTorch (bf16 autocast, fused AdamW, sequence 1024) on an H200.
    [InlineData("gpt2-xl", 8, false, 83.8)]
    [InlineData("gpt2-xl", 8, true, 29.0)]
    [InlineData("gpt2", 8, false, 13.6)]
    public void Given_a_measured_anchor_When_planned_Then_peak_gpu_memory_is_within_10_percent(string model, int microBatch, bool checkpointing, double measuredGb)
    {
        var settings = new TrainingSettings { Executor = ExecutorKind.DeepSpeed, MicroBatch = microBatch, SeqLen = 1024, Precision = Precision.Bf16, ActivationCheckpointing = checkpointing };
        var plan = MemoryPlanner.Plan(Model(model), H200, settings);
        double predicted = plan.GpuAllocatedPeak.GB;
        Assert.InRange(predicted / measuredGb, 0.9, 1.1);
    }

    [Theory]
    [InlineData("gpt2-xl", 1, 1)]
    [InlineData("llama-2-7b", 8, 1)]
    [InlineData("llama-2-70b", 8, 4)]
    public void Given_zero3_without_offload_When_planned_Then_gpu_model_states_equal_deepspeeds_estimate(string name, int gpus, int nodes)
    {
        var model = Model(name);
        var s = new TrainingSettings { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero3, GpusPerNode = gpus, Nodes = nodes, PrefetchDepth = 0 };
        var plan = MemoryPlanner.Plan(model, Dgx, s);
        var ds = DeepSpeedEstimators.Zero3(model.TotalParameters, DeepSpeedModules.LargestModuleParameters(model), gpus, nodes, cpuOffload: false);
        Assert.Equal(ds.GpuBytes, plan.ModelStatesGpu.Value, (double)gpus * nodes * 18);
    }

    [Theory]
    [InlineData("gpt2-xl", 1, 1)]
    [InlineData("llama-2-13b", 8, 1)]
    [InlineData("llama-3-70b", 8, 2)]
    public void Given_zero3_with_optimizer_offload_When_planned_Then_gpu_and_cpu_states_equal_deepspeeds_estimate(string name, int gpus, int nodes)
    {
        var model = Model(name);
        var s = new TrainingSettings { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero3, OptimizerOffload = OffloadTier.Cpu, GpusPerNode = gpus, Nodes = nodes, PrefetchDepth = 0 };
        var plan = MemoryPlanner.Plan(model, Dgx, s);
        var ds = DeepSpeedEstimators.Zero3(model.TotalParameters, DeepSpeedModules.LargestModuleParameters(model), gpus, nodes, cpuOffload: true, cpuOffloadParams: false);
        Assert.Equal(ds.GpuBytes, plan.ModelStatesGpu.Value, (double)gpus * nodes * 2);
        Assert.Equal(ds.CpuBytes, plan.ModelStatesCpu.Value * 1.5, ds.CpuBytes * 1e-6);
    }

    [Theory]
    [InlineData("gpt2-xl", 1, 1)]
    [InlineData("llama-2-70b", 8, 1)]
    [InlineData("llama-2-70b", 8, 4)]
    public void Given_zero3_with_parameter_and_optimizer_offload_When_planned_Then_states_equal_deepspeeds_estimate(string name, int gpus, int nodes)
    {
        var model = Model(name);
        var s = new TrainingSettings { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero3, OptimizerOffload = OffloadTier.Cpu, ParamOffload = OffloadTier.Cpu, GpusPerNode = gpus, Nodes = nodes, PrefetchDepth = 0 };
        var plan = MemoryPlanner.Plan(model, Dgx, s);
        var ds = DeepSpeedEstimators.Zero3(model.TotalParameters, DeepSpeedModules.LargestModuleParameters(model), gpus, nodes, cpuOffload: true, cpuOffloadParams: true);
        Assert.Equal(ds.GpuBytes, plan.ModelStatesGpu.Value);
        Assert.Equal(ds.CpuBytes, plan.ModelStatesCpu.Value * 1.5, ds.CpuBytes * 1e-6);
    }

    [Theory]
    [InlineData("gpt2-xl", 1)]
    [InlineData("llama-2-7b", 4)]
    [InlineData("llama-2-7b", 8)]
    public void Given_zero2_When_planned_Then_gpu_states_equal_deepspeeds_estimate(string name, int gpus)
    {
        var model = Model(name);
        var plain = MemoryPlanner.Plan(model, Dgx, new TrainingSettings { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero2, GpusPerNode = gpus });
        var offloaded = MemoryPlanner.Plan(model, Dgx, new TrainingSettings { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Zero2, OptimizerOffload = OffloadTier.Cpu, GpusPerNode = gpus });
        Assert.Equal(DeepSpeedEstimators.Zero2(model.TotalParameters, gpus, 1, cpuOffload: false).GpuBytes, plain.ModelStatesGpu.Value, (double)gpus * 16);
        var ds = DeepSpeedEstimators.Zero2(model.TotalParameters, gpus, 1, cpuOffload: true);
        Assert.Equal(ds.GpuBytes, offloaded.ModelStatesGpu.Value);
        if (gpus <= 4) Assert.Equal(ds.CpuBytes, offloaded.ModelStatesCpu.Value * 1.5, ds.CpuBytes * 1e-6);
    }

    [Fact]
    public void Given_nvme_offload_When_planned_Then_states_land_on_nvme_and_swap_buffers_are_pinned()
    {
        var model = Model("llama-2-13b");
        var s = new TrainingSettings
        {
            Executor = ExecutorKind.DeepSpeed,
            ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme,
            NvmePath = "/tmp", GpusPerNode = 1, BufferCount = 5, BufferSize = 600_000_000,
        };
        var plan = MemoryPlanner.Plan(model, Dgx, s);
        long p = model.TotalParameters;
        Assert.Equal(Bytes.OfElements(p, 2), plan.Nvme.Of("parameters"));
        Assert.Equal(Bytes.OfElements(p, 12), plan.Nvme.Of("optimizer states"));
        Assert.Equal(Bytes.OfElements(p, 4), plan.Nvme.Of("gradient partition"));
        Assert.Equal(Bytes.OfElements(600_000_000, 2) * 5, plan.CpuPinned.Of("parameter swap buffers"));
        Assert.Equal(Bytes.OfElements(1_000_000_000, 4) * 4, plan.CpuPinned.Of("optimizer swap buffers"));
        Assert.Equal(Bytes.Zero, plan.Gpu.Of("optimizer states"));
    }

    [Fact]
    public void Given_a_cpu_only_machine_When_planned_Then_the_device_working_set_is_host_ram()
    {
        var cpuOnly = ProfileCatalog.Default.Load("ci-2core-24gb");
        var plan = MemoryPlanner.Plan(Model("tiny-gpt"), cpuOnly, new TrainingSettings { Executor = ExecutorKind.DeepSpeed, Precision = Precision.Fp32 });
        Assert.Empty(plan.Gpu.Items);
        Assert.Contains(plan.CpuPageable.Items, i => i.Name == "device: activations");
    }

    [Fact]
    public void Given_checkpointing_When_planned_Then_activations_shrink()
    {
        var model = Model("gpt2-large");
        var without = MemoryPlanner.Plan(model, H200, new TrainingSettings { Executor = ExecutorKind.DeepSpeed, MicroBatch = 4 });
        var with = MemoryPlanner.Plan(model, H200, new TrainingSettings { Executor = ExecutorKind.DeepSpeed, MicroBatch = 4, ActivationCheckpointing = true });
        Assert.True(with.Gpu.Of("activations") < without.Gpu.Of("activations") / 10);
    }
}
