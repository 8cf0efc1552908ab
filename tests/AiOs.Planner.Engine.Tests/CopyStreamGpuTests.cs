using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>A theory that runs only where AIOS_GPU=1 says a CUDA GPU and PyTorch's CUDA libtorch are there; reported as skipped elsewhere.</summary>
public sealed class GpuTheoryAttribute : TheoryAttribute
{
    public GpuTheoryAttribute()
    {
        if (System.Environment.GetEnvironmentVariable("AIOS_GPU") != "1")
            Skip = "needs a CUDA GPU: run with AIOS_GPU=1 on the GPU machine (docs/engine.md, \"Copy streams under the step program\")";
    }
}

/// <summary>
/// On a GPU, the copy streams (uploads and first-micro-batch downloads queued on their own streams, ordered by the
/// program's dependencies) train exactly as copies on the default stream do, for every offloaded placement and both
/// schedules, with accumulation (later micro-batches add on the host after the first's copy has landed).
/// </summary>
[Trait("Category", "Gpu")]
[Collection(nameof(TorchGlobalRandom))]
public sealed class CopyStreamGpuTests : IDisposable
{
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-copystream-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    public static TheoryData<OffloadTier, OffloadTier, StepSchedule, Precision> Placements() => new()
    {
        { OffloadTier.Cpu, OffloadTier.Cpu, StepSchedule.DeepSpeed, Precision.Bf16 },
        { OffloadTier.Cpu, OffloadTier.Cpu, StepSchedule.Overlapped, Precision.Fp32 },
        { OffloadTier.Nvme, OffloadTier.Nvme, StepSchedule.DeepSpeed, Precision.Fp32 },
        { OffloadTier.Nvme, OffloadTier.Cpu, StepSchedule.Overlapped, Precision.Bf16 },
        { OffloadTier.Cpu, OffloadTier.Nvme, StepSchedule.DeepSpeed, Precision.Fp16 },
    };

    [GpuTheory]
    [MemberData(nameof(Placements))]
    public void Given_an_offloaded_run_on_cuda_When_copies_use_their_streams_Then_losses_and_master_weights_equal_the_default_streams(
        OffloadTier param, OffloadTier optimizer, StepSchedule schedule, Precision precision)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = LayerwiseTrainerTests.Small(precision) with
        {
            ParamOffload = param, OptimizerOffload = optimizer, Schedule = schedule, NvmePath = _nvme, BufferCount = 2, PrefetchDepth = 2,
        };
        EngineOptions options = LayerwiseTrainerTests.Options() with { Device = "cuda" };

        var streams = LayerwiseTrainerTests.Run(spec, settings, options with { CopyStream = true }, reference: false);
        var defaultStream = LayerwiseTrainerTests.Run(spec, settings, options with { CopyStream = false }, reference: false);

        for (int s = 0; s < streams.Losses.Length; s++) Assert.Equal(defaultStream.Losses[s], streams.Losses[s], 5);
        for (int u = 0; u < streams.Master.Length; u++)
            for (int i = 0; i < streams.Master[u].Length; i++) Assert.Equal(defaultStream.Master[u][i], streams.Master[u][i], 1e-6f);
    }
}
