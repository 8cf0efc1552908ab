using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's gradients in CPU RAM kept in bf16 for bf16 training at accumulation 1 (exact: never summed): the host
/// item, the device's downloads in flight and the step program's download bytes follow <see cref="EngineMemory.HostGradientsInBf16"/>.
/// </summary>
public class EngineMemoryBf16GradientTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Llama = ModelCatalog.Default.Load("llama-2-7b");
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };

    private static TrainingSettings Offloaded(Precision precision, int accumulation) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, GradientOffload = OffloadTier.Cpu,
        Precision = precision, GradAccumulation = accumulation, MicroBatch = 1, SeqLen = 1024, ActivationCheckpointing = true,
    };

    private static Bytes Page(long bytes) => new((bytes + 4095) / 4096 * 4096);

    /// <summary>Each unit's host tensor at <paramref name="elementBytes"/> per element, page-rounded, as the engine maps them.</summary>
    private static Bytes PerUnit(ModelSpec m, int elementBytes) =>
        Page(elementBytes * m.LayerParameters) * m.NumLayers + Page(elementBytes * EngineMemory.OuterElements(m));

    [Theory]
    [InlineData(Precision.Bf16, 1, 2)]
    [InlineData(Precision.Bf16, 2, 4)]
    [InlineData(Precision.Fp32, 1, 4)]
    [InlineData(Precision.Fp16, 1, 4)]
    public void Given_gradients_in_cpu_ram_When_planned_Then_they_are_bf16_only_for_bf16_at_accumulation_1(Precision precision, int accumulation, int bytes)
    {
        var s = Offloaded(precision, accumulation);

        var plan = MemoryPlanner.Plan(Llama, H200, s);

        Assert.Equal(bytes == 2, EngineMemory.HostGradientsInBf16(s));
        Assert.Equal(PerUnit(Llama, bytes), plan.CpuPinned.Of("gradients"));
        // Without an fp32 sum per unit the initial weights are made in worker arrays (start-up only).
        Assert.Equal(bytes == 2, plan.CpuPageable.Of("initial values in flight") > Bytes.Zero);
    }

    [Fact]
    public void Given_bf16_at_accumulation_1_When_the_host_need_is_compared_with_fp32_sums_Then_it_drops_by_2_bytes_per_parameter_less_the_start_up_arrays()
    {
        var bf16 = EngineMemory.HostNeed(Llama, Offloaded(Precision.Bf16, 1), gpu: true);
        var fp32 = EngineMemory.HostNeed(Llama, Offloaded(Precision.Bf16, 2), gpu: true);
        static Bytes Total(IEnumerable<EngineHostItem> items) => items.Aggregate(Bytes.Zero, (sum, i) => sum + i.Item.Bytes);
        Bytes startUp = bf16.Single(i => i.Item.Name == "initial values in flight").Item.Bytes;

        // Accumulation 2 also stages later micro-batches' downloads in one pinned buffer (EngineMemoryAccumulationTests).
        Bytes staging = fp32.Single(i => i.Item.Name == "gradient staging").Item.Bytes;
        Assert.Equal(PerUnit(Llama, 4) - PerUnit(Llama, 2), Total(fp32) - staging - Total(bf16) + startUp);
        // Page rounding aside, exactly 2 bytes per parameter.
        Assert.InRange((PerUnit(Llama, 4) - PerUnit(Llama, 2)).Value - 2 * Llama.TotalParameters, 0, 4096L * (Llama.NumLayers + 1));
        Assert.Contains("exact at accumulation 1", bf16.Single(i => i.Item.Name == "gradients").Item.Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_bf16_at_accumulation_1_When_planned_Then_the_model_states_in_ram_count_2_bytes_per_parameter_of_gradients()
    {
        var bf16 = MemoryPlanner.Plan(Llama, H200, Offloaded(Precision.Bf16, 1));
        var fp32 = MemoryPlanner.Plan(Llama, H200, Offloaded(Precision.Bf16, 2));

        Assert.Equal(Bytes.OfElements(Llama.TotalParameters, 2), fp32.ModelStatesCpu - bf16.ModelStatesCpu);
    }

    [Fact]
    public void Given_bf16_at_accumulation_1_When_the_device_is_planned_Then_the_downloads_in_flight_are_packed_in_bf16()
    {
        var bf16 = EngineMemory.Plan(Llama, H200, Offloaded(Precision.Bf16, 1), Bytes.FromGiB(11));
        var fp32 = EngineMemory.Plan(Llama, H200, Offloaded(Precision.Bf16, 2), Bytes.FromGiB(11));
        long layer = Llama.LayerParameters, outer = EngineMemory.OuterElements(Llama);

        // Accumulation 1: three layers' bf16 copies (two in flight, one packed and waiting). Accumulation 2: the larger of three
        // layers' fp32 copies and the first micro-batch's last two (layer 0's, the outer block's) beside later units' bf16 packs,
        // one per staging buffer (their adds may lag).
        int staging = Simulation.Program.ProgramShape.Engine.GradientStagingBuffers;
        Assert.Equal(Bytes.OfElements(Math.Max(3 * layer * 4, (layer + outer) * 4 + staging * layer * 2), 1), fp32.Gpu.Of("gradient downloads in flight"));
        Assert.Equal(Bytes.OfElements(3 * layer, 2), bf16.Gpu.Of("gradient downloads in flight"));
    }

    [Theory]
    [InlineData(Precision.Bf16, 1, 2)]
    [InlineData(Precision.Bf16, 2, 4)]
    [InlineData(Precision.Fp16, 1, 4)]
    [InlineData(Precision.Fp32, 1, 4)]
    public void Given_the_engine_program_on_a_gpu_When_built_Then_the_first_micro_batch_downloads_cross_as_the_host_keeps_them(Precision precision, int accumulation, int bytes)
    {
        var s = Offloaded(precision, accumulation) with { SeqLen = 16, SubGroupSize = 1000 };

        var ops = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine).Ops;

        var first = ops.Where(o => o.Kind == OpKind.GradDownload && o.MicroBatch == 0).ToList();
        Assert.NotEmpty(first);
        Assert.All(first, o => Assert.Equal(Bytes.OfElements(o.Unit == UnitId.Outer ? EngineMemory.OuterElements(Tiny) : Tiny.LayerParameters, bytes), o.Bytes));
        // Later micro-batches always cross in the working precision.
        Assert.All(ops.Where(o => o.Kind == OpKind.GradDownload && o.MicroBatch > 0), o => Assert.Equal(s.ParamBytes, o.Bytes.Value / (o.Unit == UnitId.Outer ? EngineMemory.OuterElements(Tiny) : Tiny.LayerParameters)));
    }

    [Fact]
    public void Given_bf16_at_accumulation_1_When_the_step_is_predicted_Then_the_engine_downloads_half_the_bytes_of_fp32_sums()
    {
        var bf16 = StepScheduler.Build(Tiny, H200, Offloaded(Precision.Bf16, 1) with { SeqLen = 16, SubGroupSize = 1000 }, false, ProgramShape.Engine).Ops;
        var fp32 = StepScheduler.Build(Tiny, H200, Offloaded(Precision.Bf16, 2) with { SeqLen = 16, SubGroupSize = 1000 }, false, ProgramShape.Engine).Ops;
        static long Downloaded(IEnumerable<Operation> ops, int mb) => ops.Where(o => o.Kind == OpKind.GradDownload && o.MicroBatch == mb).Sum(o => o.Bytes.Value);

        Assert.Equal(Downloaded(fp32, 0), 2 * Downloaded(bf16, 0));
    }
}
