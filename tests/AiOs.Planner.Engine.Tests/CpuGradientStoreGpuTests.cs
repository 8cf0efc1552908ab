using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// On a GPU, bf16 training at accumulation 1 keeps bf16 gradients in pinned RAM: packed in bf16 after each backward and
/// downloaded on the copy stream (or on the default stream without one). Both paths train as the in-memory reference does.
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(TorchGlobalRandom))]
public sealed class CpuGradientStoreGpuTests : IDisposable
{
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-bf16grads-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    public static TheoryData<OffloadTier, OffloadTier, StepSchedule> Placements() => new()
    {
        { OffloadTier.Cpu, OffloadTier.Cpu, StepSchedule.DeepSpeed },
        { OffloadTier.Cpu, OffloadTier.Cpu, StepSchedule.Overlapped },
        { OffloadTier.Nvme, OffloadTier.Nvme, StepSchedule.Overlapped },
    };

    [GpuTheory]
    [MemberData(nameof(Placements))]
    public void Given_bf16_at_accumulation_1_on_cuda_When_gradients_download_as_bf16_Then_both_stream_paths_equal_the_reference(
        OffloadTier param, OffloadTier optimizer, StepSchedule schedule)
    {
        CudaDeterminism.Require();
        ModelSpec spec = ModelCatalog.Default.Load("tiny-llama");
        TrainingSettings settings = LayerwiseTrainerTests.Small(Precision.Bf16) with
        {
            GradAccumulation = 1, ParamOffload = param, OptimizerOffload = optimizer, GradientOffload = OffloadTier.Cpu, Schedule = schedule,
            NvmePath = _nvme, BufferCount = 2, PrefetchDepth = 2,
        };
        // Per-unit clipping at a bound no unit reaches: both paths take Σg² (the copy stream's from the packed bf16 gradient on the
        // device in fp32 rows, GradientNorms.UnitSum; the default stream's from the host copy in fp64), and both clip factors are
        // exactly 1. At 0.5 the factors differed in their last bits, which a bf16 weight's rounding turned into a bf16 step that
        // grew over the steps (on H100s with deterministic kernels, 2026-12-07: losses 5.9e-5 apart in one run, 2.7e-4 in the
        // next), so the comparison read the two sums' rounding, not the download. The accumulation test below clips at 0.5: its
        // paths share the sum.
        EngineOptions options = LayerwiseTrainerTests.Options(new GradientClipping(1e6, ClipMode.PerUnit)) with { Device = "cuda" };
        Assert.True(AiOs.Planner.Memory.EngineMemory.HostGradientsInBf16(settings));

        var streams = LayerwiseTrainerTests.Run(spec, settings, options with { CopyStream = true }, reference: false);
        var defaultStream = LayerwiseTrainerTests.Run(spec, settings, options with { CopyStream = false }, reference: false);
        var reference = LayerwiseTrainerTests.Run(spec, settings, options, reference: true);

        for (int s = 0; s < streams.Losses.Length; s++) Assert.Equal(defaultStream.Losses[s], streams.Losses[s], 5);
        for (int u = 0; u < streams.Master.Length; u++)
            for (int i = 0; i < streams.Master[u].Length; i++) Assert.Equal(defaultStream.Master[u][i], streams.Master[u][i], 1e-6f);
        for (int s = 0; s < streams.Losses.Length; s++) Assert.Equal(reference.Losses[s], streams.Losses[s], 4);
        for (int u = 0; u < streams.Master.Length; u++) LayerwiseTrainerTests.AssertClose(reference.Master[u], streams.Master[u], 1e-4f);
    }

    /// <summary>
    /// Accumulation over three micro-batches: the later micro-batches' downloads on the copy stream into the staging buffers
    /// (taken in turn, added on the host-sums thread) and the default-stream path through the parameters' own staging end in the same host add
    /// (<see cref="Model.FlatParameters.AddStaged"/>), so they train alike, and as the in-memory reference does.
    /// </summary>
    [GpuTheory]
    [InlineData(Precision.Bf16, StepSchedule.DeepSpeed)]
    [InlineData(Precision.Bf16, StepSchedule.Overlapped)]
    [InlineData(Precision.Fp32, StepSchedule.Overlapped)]
    [InlineData(Precision.Bf16, StepSchedule.Delayed)] // the two stores share the staging buffers
    public void Given_accumulation_on_cuda_When_later_micro_batches_download_on_the_copy_stream_Then_they_train_as_the_default_stream_and_the_reference(
        Precision precision, StepSchedule schedule)
    {
        CudaDeterminism.Require();
        ModelSpec spec = ModelCatalog.Default.Load("tiny-llama");
        TrainingSettings settings = LayerwiseTrainerTests.Small(precision) with
        {
            GradAccumulation = 3, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, GradientOffload = OffloadTier.Cpu,
            Schedule = schedule, BufferCount = 2, PrefetchDepth = 2,
        };
        EngineOptions options = LayerwiseTrainerTests.Options(new GradientClipping(0.5, ClipMode.PerUnit)) with { Device = "cuda" };

        var streams = LayerwiseTrainerTests.Run(spec, settings, options with { CopyStream = true }, reference: false);
        var defaultStream = LayerwiseTrainerTests.Run(spec, settings, options with { CopyStream = false }, reference: false);

        // Two GPU runs agree to the tolerance of the test above (the device's backward kernels need not repeat their bits).
        for (int s = 0; s < streams.Losses.Length; s++) Assert.Equal(defaultStream.Losses[s], streams.Losses[s], 5);
        for (int u = 0; u < streams.Master.Length; u++)
            for (int i = 0; i < streams.Master[u].Length; i++) Assert.Equal(defaultStream.Master[u][i], streams.Master[u][i], 1e-6f);
        // The serial reference has no delayed update (DelayedScheduleTests checks that schedule's own reference on the CPU).
        if (schedule == StepSchedule.Delayed) return;
        var reference = LayerwiseTrainerTests.Run(spec, settings, options, reference: true);
        for (int s = 0; s < streams.Losses.Length; s++) Assert.Equal(reference.Losses[s], streams.Losses[s], 4);
        for (int u = 0; u < streams.Master.Length; u++) LayerwiseTrainerTests.AssertClose(reference.Master[u], streams.Master[u], 1e-4f);
    }
}
