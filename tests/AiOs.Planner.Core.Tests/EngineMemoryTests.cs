using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>The bundled engine's memory as the <c>aios</c> executor predicts it (what Engine/Execution allocates).</summary>
public class EngineMemoryTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly HardwareProfile Cpu = ProfileCatalog.Default.Load("ci-2core-24gb");
    private static readonly string[] PropertyModels = ["tiny-gpt", "gpt2", "gpt2-xl", "llama-2-7b"];
    private static ModelSpec Model(string name) => ModelCatalog.Default.Load(name);

    private static TrainingSettings Offloaded(int prefetch) => new()
    {
        ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity, PrefetchDepth = prefetch, MicroBatch = 1,
    };

    [Fact]
    public void Given_the_resident_and_the_layer_by_layer_trainer_When_planned_Then_each_reserves_its_own_runtime_floor_plus_the_allocator_slack()
    {
        var m = Model("tiny-gpt");
        var resident = MemoryPlanner.Plan(m, H200, new TrainingSettings { MicroBatch = 1, SeqLen = 128 });
        var streamed = MemoryPlanner.Plan(m, H200, Offloaded(1) with { SeqLen = 128 });

        Bytes Expected(MemoryPlan plan, Bytes floor, double slack) => floor + (plan.Gpu.Peak - plan.GpuReserve) * slack;
        Assert.Equal(EngineMemory.ResidentRuntimeFloor, EngineMemory.RuntimeReserve(new TrainingSettings()));
        Assert.Equal(EngineMemory.CudaContext, EngineMemory.RuntimeReserve(Offloaded(1)));
        Assert.True(EngineMemory.ResidentRuntimeFloor < EngineMemory.CudaContext);
        Assert.Equal(Expected(resident, EngineMemory.ResidentRuntimeFloor, EngineMemory.AllocatorSlack).Value, resident.GpuReserve.Value, 1.0);
        Assert.Equal(Expected(streamed, EngineMemory.CudaContext, EngineMemory.StreamedAllocatorSlack).Value, streamed.GpuReserve.Value, 1.0);
        Assert.True(EngineMemory.StreamedAllocatorSlack > EngineMemory.AllocatorSlack);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void Given_streamed_parameters_When_planned_Then_the_device_holds_prefetch_depth_plus_one_layer_slots_and_the_outer_block(int prefetch)
    {
        var m = Model("gpt2-xl");
        var plan = MemoryPlanner.Plan(m, H200, Offloaded(prefetch));

        // Parameters only (ParameterSwapper.Prepare): the gradients are autograd's, priced in backward (EngineBackwardMemoryTests).
        Assert.Equal(Bytes.OfElements(m.LayerParameters, 2) * (prefetch + 1), plan.Gpu.Of("layer slots"));
        Assert.Equal(Bytes.OfElements(m.EmbeddingParameters + m.HeadParameters, 2), plan.Gpu.Of("outer block"));
        Assert.Equal(Bytes.Zero, plan.Gpu.Of("optimizer states"));
    }

    [Fact]
    public void Given_streamed_parameters_on_a_gpu_When_planned_Then_each_unit_is_pinned_once_at_its_size_rounded_to_a_page()
    {
        // PyTorch's pinned allocator rounded each block to a power of two (gpt2-xl: +9%, a 3B Llama: +27%); the engine now maps its own.
        var m = Model("gpt2-xl");
        // Accumulation 2: fp32 gradient sums (accumulation 1 keeps bf16: EngineBf16GradientTests).
        var plan = MemoryPlanner.Plan(m, H200, Offloaded(1) with { GradAccumulation = 2 });
        static Bytes Page(Bytes b) => new((b.Value + 4095) / 4096 * 4096);

        Assert.Equal(Page(Bytes.OfElements(m.LayerParameters, 4)) * m.NumLayers + Page(Bytes.OfElements(m.EmbeddingParameters + m.HeadParameters, 4)), plan.CpuPinned.Of("gradients"));
        Assert.Equal(Page(Bytes.OfElements(m.LayerParameters, 2)) * m.NumLayers + Page(Bytes.OfElements(m.EmbeddingParameters + m.HeadParameters, 2)), plan.CpuPinned.Of("parameters"));
        // Beside them, accumulation's staging buffers (each the largest unit, bf16) for later micro-batches' downloads.
        Assert.Equal(Page(Bytes.OfElements(m.EmbeddingParameters + m.HeadParameters, 2)) * Simulation.Program.ProgramShape.Engine.GradientStagingBuffers,
            plan.CpuPinned.Of("gradient staging"));
        Assert.InRange((plan.CpuPinned.Peak - plan.CpuPinned.Of("gradient staging")).Value / (double)m.TotalParameters, 6.0, 6.001);
        Assert.Equal(Bytes.OfElements(m.TotalParameters, 12), plan.CpuPageable.Of("optimizer states"));
    }

    [Fact]
    public void Given_everything_on_nvme_When_the_model_grows_Then_host_memory_grows_only_with_the_largest_unit_buffers()
    {
        // NVMe offload: host memory is the buffers the settings name (staging, optimizer, one gradient), not the model's size.
        var s = new TrainingSettings
        {
            ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, ZeroStage = ZeroStage.Infinity, NvmePath = "/tmp", MicroBatch = 1, SeqLen = 128,
            Precision = Precision.Bf16, SubGroupSize = 10_000_000,
        };
        var small = Model("gpt2-xl");
        var large = small with { Name = "gpt2-xl-x4", NumLayers = small.NumLayers * 4 };

        var a = EngineMemory.HostNeed(small, s, gpu: true);
        var b = EngineMemory.HostNeed(large, s, gpu: true);

        Assert.Equal(a.Select(i => (i.Item.Name, i.Item.Bytes)), b.Select(i => (i.Item.Name, i.Item.Bytes)));
    }

    [Fact]
    public void Given_the_layerwise_engine_When_checkpointing_is_off_Then_it_still_keeps_only_layer_inputs()
    {
        // LayerwiseTrainer always recomputes; the flag changes nothing on the device.
        var m = Model("gpt2-xl");
        var off = MemoryPlanner.Plan(m, H200, Offloaded(1));
        var on = MemoryPlanner.Plan(m, H200, Offloaded(1) with { ActivationCheckpointing = true });

        Assert.Equal(on.Gpu.Of("activations"), off.Gpu.Of("activations"));
    }

    [Fact]
    public void Given_a_gpu_memory_limit_When_planned_Then_the_limit_is_the_capacity()
    {
        var plan = EngineMemory.Plan(Model("gpt2-xl"), H200, new TrainingSettings { MicroBatch = 8 }, Bytes.FromGB(11));

        Assert.Equal(Bytes.FromGB(11), plan.Gpu.Capacity);
        Assert.False(plan.Gpu.Fits);
    }

    [Fact]
    public void Given_a_cpu_device_When_planned_Then_the_device_working_set_is_host_ram_with_the_cpu_runtime_baseline()
    {
        var plan = MemoryPlanner.Plan(Model("tiny-gpt"), Cpu, new TrainingSettings { SeqLen = 128 });

        Assert.Equal(Bytes.Zero, plan.Gpu.Peak);
        Assert.Contains(plan.CpuPageable.Items, i => i.Name.StartsWith("device: ", StringComparison.Ordinal));
        Assert.Equal(EngineMemory.CpuRuntimeBaseline, plan.CpuPageable.Of("runtime baseline"));
    }

    [Fact]
    public void Given_any_engine_plan_When_the_micro_batch_grows_Then_no_tier_shrinks_and_nvme_holds_what_is_offloaded()
    {
        var models = PropertyModels.Select(Model).ToArray();
        var cases =
            from model in Gen.Elements(models)
            from param in Gen.Elements(OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme)
            from optimizer in Gen.Elements(OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme)
            from micro in Gen.Choose(1, 16)
            from accumulation in Gen.Choose(1, 4)
            from prefetch in Gen.Choose(0, 3)
            from precision in Gen.Elements(Precision.Fp32, Precision.Bf16)
            from checkpointing in Gen.Elements(true, false)
            select (model, new TrainingSettings
            {
                ParamOffload = param, OptimizerOffload = optimizer, NvmePath = "/nvme", MicroBatch = micro, GradAccumulation = accumulation,
                PrefetchDepth = prefetch, Precision = precision, ActivationCheckpointing = checkpointing, SeqLen = Math.Min(512, model.MaxSeqLen),
                // NVMe holds every parameter: nothing kept in RAM under max_in_cpu (MaxInCpuTests covers that split).
                MaxInCpu = 0,
            });
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            var (model, s) = c;
            var small = MemoryPlanner.Plan(model, H200, s);
            var large = MemoryPlanner.Plan(model, H200, s with { MicroBatch = s.MicroBatch + 1 });
            long p = model.TotalParameters;
            bool nvme = (s.ParamOffload != OffloadTier.Nvme || small.Nvme.Of("parameters") == Bytes.OfElements(p, s.ParamBytes))
                && (s.OptimizerOffload != OffloadTier.Nvme || small.Nvme.Of("optimizer states") == Bytes.OfElements(p, 12));
            return large.Gpu.Peak >= small.Gpu.Peak && large.CpuPeak >= small.CpuPeak && large.Nvme.Peak == small.Nvme.Peak && nvme;
        }).QuickCheckThrowOnFailure();
    }
}
