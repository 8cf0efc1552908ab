using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's host items that follow what its code allocates: the resident trainer's bounded start-up window, the NVMe
/// optimizer's swap slots (the step program's, not DeepSpeed's buffer count), the device tier's pinned staging copies and
/// the reused write-back arrays of parameters on NVMe.
/// </summary>
public class EngineHostMemoryTests
{
    private static readonly ModelSpec Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly ModelSpec Medium = ModelCatalog.Default.Load("gpt2-medium");

    private static Bytes Item(IEnumerable<EngineHostItem> items, string name) =>
        items.Where(i => i.Item.Name == name).Aggregate(Bytes.Zero, (sum, i) => sum + i.Item.Bytes);

    private static TrainingSettings Resident => new() { MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios };

    private static Bytes Page(long bytes) => new((bytes + 4095) / 4096 * 4096);

    private static long Pow2(long bytes) => 1L << (64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)(bytes - 1)));

    [Theory]
    [InlineData(16)]
    [InlineData(2)]
    [InlineData(128)]
    public void Given_a_resident_run_When_its_host_is_priced_Then_start_up_is_the_window_of_layers_and_the_outer_block_not_the_model(int cores)
    {
        var items = EngineMemory.HostNeed(Xl, Resident, gpu: true, cores);

        int window = EngineMemory.InitialWindow(Xl, cores);
        long layers = Math.Min(window, Xl.NumLayers);
        Assert.Equal(Bytes.OfElements(layers * Xl.LayerParameters + EngineMemory.OuterElements(Xl), 4), Item(items, "initial values in flight"));
        Assert.True(Item(items, "initial values in flight") < Bytes.OfElements(Xl.TotalParameters, 4), "bounded below one array per unit");
        Assert.Equal(EngineMemory.GpuRuntimeBaseline, Item(items, "runtime baseline"));
    }

    [Fact]
    public void Given_a_resident_run_When_priced_on_a_gpu_and_on_the_cpu_Then_only_the_cpu_adds_the_start_up_staging_copy()
    {
        // On a GPU the staging tensor, freed before the kernel warm-up, is taken over by the warm-up's host allocations,
        // which the runtime baseline covers; the CPU device keeps pricing it.
        var gpu = EngineMemory.HostNeed(Xl, Resident, gpu: true, 16);
        var cpu = EngineMemory.HostNeed(Xl, Resident, gpu: false, 16);

        Assert.DoesNotContain(gpu, i => i.Item.Name == "initial values copy");
        Assert.Equal(Bytes.OfElements(Math.Min(EngineMemory.StagingSliceElements, Math.Max(Xl.LayerParameters, EngineMemory.OuterElements(Xl))), 4), Item(cpu, "initial values copy"));
    }

    [Theory]
    [InlineData(OptimizerStateFormat.EightBit, 1, true)]
    [InlineData(OptimizerStateFormat.Fp32, 1, false)]
    [InlineData(OptimizerStateFormat.EightBit, 2, false)]
    public void Given_the_optimizer_in_ram_When_its_step_needs_fp32_gradients_from_bf16_ones_Then_one_sub_group_of_scratch_is_priced(OptimizerStateFormat state, int accumulation, bool scratch)
    {
        // OptimizerStates.StepEightBit widens a bf16 store's sub-group into _gradientScratch; fp32 AdamW reads the bf16 bits
        // as they are, and at accumulation 2 the store holds fp32 sums it hands out as they are.
        var s = new TrainingSettings
        {
            ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, OptimizerState = state, SubGroupSize = 10_000_000,
            GradAccumulation = accumulation, MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios,
        };
        var items = EngineMemory.HostNeed(Xl, s, gpu: true, 16);

        Assert.Equal(scratch ? Bytes.OfElements(10_000_000, 4) : Bytes.Zero, Item(items, EngineMemory.EightBitGradientScratchItem));
    }

    [Fact]
    public void Given_the_window_When_taken_Then_it_is_the_look_ahead_over_the_largest_unit_from_two_to_the_cores()
    {
        long largest = 4 * Math.Max(Xl.LayerParameters, EngineMemory.OuterElements(Xl));
        Assert.Equal((int)Math.Clamp(EngineMemory.InitialLookAhead.Value / largest, 2, 16), EngineMemory.InitialWindow(Xl, 16));
        Assert.Equal(2, EngineMemory.InitialWindow(Xl, 1));
    }

    [Theory]
    [InlineData(1, false, 1)]
    [InlineData(4, false, 1)]
    [InlineData(4, true, 2)]
    public void Given_the_optimizer_on_nvme_When_priced_Then_the_swap_slots_are_the_programs_not_the_buffer_count(int bufferCount, bool pipelineRead, int slots)
    {
        var s = new TrainingSettings
        {
            ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/tmp", OptimizerBufferCount = bufferCount,
            PipelineRead = pipelineRead, SubGroupSize = 1_000_000, MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios,
        };
        var items = EngineMemory.HostNeed(Medium, s, gpu: true, 16);

        Assert.Equal(slots, EngineMemory.OptimizerSwapSlots(s));
        // [master | m | v | gradient] of one 1 M sub-group per slot, and [master | m | v] once, each 4 KiB aligned.
        Assert.Equal(Page(16_000_000) * slots, Item(items, "optimizer swap buffers"));
        Assert.Equal(Page(12_000_000), Item(items, "optimizer start-up buffer"));
    }

    [Fact]
    public void Given_parameters_on_the_device_and_the_optimizer_in_ram_When_priced_Then_each_unit_keeps_a_pinned_power_of_two_staging_copy()
    {
        var s = Resident with { OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity };
        var items = EngineMemory.HostNeed(Medium, s, gpu: true, 16);

        long layer = 2 * Medium.LayerParameters, outer = 2 * EngineMemory.OuterElements(Medium);
        EngineHostItem staging = items.Single(i => i.Item.Name == "parameter staging copies");
        Assert.True(staging.Pinned);
        Assert.Equal(new Bytes(Pow2(layer) * Medium.NumLayers + Pow2(outer) + layer + outer), staging.Item.Bytes);
        // On a CPU device the modules are written in place: no staging.
        Assert.Equal(Bytes.Zero, Item(EngineMemory.HostNeed(Medium, s, gpu: false, 16), "parameter staging copies"));
    }

    [Theory]
    [InlineData(16)]
    [InlineData(4)]
    public void Given_parameters_on_nvme_When_priced_Then_start_up_write_back_keeps_one_exact_array_per_worker_and_the_outer_blocks(int cores)
    {
        var s = new TrainingSettings
        {
            ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Cpu, NvmePath = "/tmp", MaxInCpu = 0, MicroBatch = 1, SeqLen = 1024,
            Precision = Precision.Bf16, Executor = ExecutorKind.Aios,
        };
        var items = EngineMemory.HostNeed(Medium, s, gpu: true, cores);

        // bf16 gradients at accumulation 1: the units are made in worker arrays, as many workers as 2 GiB of layers allow, at most the cores.
        long workers = Math.Min(Math.Clamp(EngineMemory.InitialLookAhead.Value / (4 * Medium.LayerParameters), 1, cores), Medium.NumLayers);
        Assert.Equal(new Bytes(2 * Medium.LayerParameters * workers + 2 * EngineMemory.OuterElements(Medium)), Item(items, "parameter write-back arrays"));
        Assert.Equal(Bytes.OfElements(workers * Medium.LayerParameters + EngineMemory.OuterElements(Medium), 4), Item(items, "initial values in flight"));
    }

    [Fact]
    public void Given_fp32_gradient_sums_and_two_ranks_When_priced_Then_the_units_are_made_in_worker_arrays_of_whole_units()
    {
        var s = new TrainingSettings
        {
            ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, MicroBatch = 1, SeqLen = 1024, Precision = Precision.Fp32,
            Executor = ExecutorKind.Aios, GpusPerNode = 2,
        };

        // One rank makes its units in its fp32 gradient sums; two ranks hold shards there, so whole units go to worker arrays.
        Assert.Equal(Bytes.Zero, Item(EngineMemory.HostNeed(Medium, s with { GpusPerNode = 1 }, gpu: true, 16), "initial values in flight"));
        Bytes two = Item(EngineMemory.HostNeed(Medium, s, gpu: true, 16), "initial values in flight");
        Assert.True(two >= Bytes.OfElements(Medium.LayerParameters + EngineMemory.OuterElements(Medium), 4), $"whole units, got {two}");
    }
}
