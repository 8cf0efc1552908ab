using System.Runtime.InteropServices;
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
/// The GPU-only tests that compare two CUDA runs for equality need CUDA's kernels deterministic: without it two runs of the
/// same settings already differ (tiny-gpt in bf16 with parameters and optimizer in RAM, six steps on an H100, 2026-12-07:
/// losses by up to 5e-5 from step 3; in fp32 by 5e-7 at step 5: the attention's and the embedding's backward add with atomics
/// in an order that changes from run to run), and a comparison of copy paths would read that noise. With deterministic
/// algorithms libtorch takes its deterministic kernels or throws where it has none; cuBLAS needs
/// <c>CUBLAS_WORKSPACE_CONFIG=:4096:8</c> in the environment before it starts (run-tests.sh sets it), else libtorch says so.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 marks <c>use_deterministic_algorithms</c> "not implemented", so this calls libtorch's own setter,
/// <c>at::globalContext().setDeterministicAlgorithms(true, false)</c>, through its exported (Itanium-mangled) names.
/// </remarks>
internal static class CudaDeterminism
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nint GlobalContext();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate void SetDeterministic(nint context, byte deterministic, byte warnOnly);

    public static void Require()
    {
        TorchSharp.torch.InitializeDeviceType(TorchSharp.DeviceType.CPU); // libtorch_cpu is loaded before its names are looked up
        nint lib = NativeLibrary.Load("libtorch_cpu.so");
        var context = Marshal.GetDelegateForFunctionPointer<GlobalContext>(NativeLibrary.GetExport(lib, "_ZN2at13globalContextEv"));
        var set = Marshal.GetDelegateForFunctionPointer<SetDeterministic>(NativeLibrary.GetExport(lib, "_ZN2at7Context26setDeterministicAlgorithmsEbb"));
        set(context(), 1, 0);
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
        CudaDeterminism.Require();
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
