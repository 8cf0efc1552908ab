using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Activation checkpoints in CPU RAM (<c>--offload-activations cpu</c>, issue 14 item 5): on the CPU the layer-by-layer
/// trainer copies each layer input into a separate host tensor and back, and trains exactly as it does with them on the device.
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class LayerwiseTrainerCheckpointOffloadTests
{
    private const int Steps = 3;

    private static (double[] Losses, float[][] Master, StepProgram Program, long Uploaded, int[] SpanOps) Run(TrainingSettings settings)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var options = LayerwiseTrainerTests.Options();
        using var t = new LayerwiseTrainer(spec, settings, options);
        var losses = new double[Steps];
        for (int s = 0; s < Steps; s++) losses[s] = t.Step(m => data.Sample(options.Seed, s, m, settings.MicroBatch, settings.SeqLen)).Loss;
        int[] spanOps = t.Trace.SpansOf(Steps).Where(x => x.OpId >= 0).Select(x => x.OpId).Order().ToArray();
        return (losses, Enumerable.Range(0, spec.NumLayers + 1).Select(t.MasterOf).ToArray(), t.Program, t.Io.Snapshot().Uploaded.Value, spanOps);
    }

    [Theory]
    [InlineData(1, StepSchedule.DeepSpeed)]
    [InlineData(2, StepSchedule.DeepSpeed)]
    [InlineData(2, StepSchedule.Overlapped)]
    public void Given_tiny_gpt_with_params_and_optimizer_in_ram_When_checkpoints_wait_in_cpu_ram_Then_losses_and_weights_equal_those_kept_on_the_device(int accumulation, StepSchedule schedule)
    {
        var onDevice = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, GradAccumulation = accumulation, Schedule = schedule, ActivationCheckpointing = true,
        };

        var kept = Run(onDevice);
        var moved = Run(onDevice with { ActivationOffload = OffloadTier.Cpu });

        Assert.Equal(kept.Losses, moved.Losses);
        for (int u = 0; u < kept.Master.Length; u++) Assert.Equal(kept.Master[u], moved.Master[u]);
        Assert.DoesNotContain(kept.Program.Ops, o => o.Kind is OpKind.ActivationOffload or OpKind.ActivationFetch);
        int layers = ModelCatalog.Default.Load("tiny-gpt").NumLayers;
        Assert.Equal(layers * accumulation, moved.Program.Ops.Count(o => o.Kind == OpKind.ActivationOffload));
        Assert.Equal(layers * accumulation, moved.Program.Ops.Count(o => o.Kind == OpKind.ActivationFetch));
        // The last step's spans are the program's operations one for one, the copies out and back included.
        Assert.Equal(Enumerable.Range(0, moved.Program.Ops.Count), moved.SpanOps);
        // Every step brought every checkpoint back: the uploads grew by exactly the copies back.
        long back = moved.Program.Ops.Where(o => o.Kind == OpKind.ActivationFetch).Sum(o => o.Bytes.Value);
        Assert.Equal(kept.Uploaded + Steps * back, moved.Uploaded);
    }

    [GpuTheory]
    [Trait("Category", "Gpu")]
    [InlineData(true, Precision.Bf16)]
    [InlineData(false, Precision.Bf16)]
    [InlineData(true, Precision.Fp32)]
    public void Given_a_cuda_run_When_checkpoints_wait_in_pinned_ram_Then_losses_and_weights_equal_those_kept_on_the_device(bool copyStream, Precision precision)
    {
        CudaDeterminism.Require();
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        var onDevice = LayerwiseTrainerTests.Small(precision) with { ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, GradAccumulation = 2 };
        EngineOptions options = LayerwiseTrainerTests.Options() with { Device = "cuda", CopyStream = copyStream };

        var kept = LayerwiseTrainerTests.Run(spec, onDevice, options, reference: false);
        var moved = LayerwiseTrainerTests.Run(spec, onDevice with { ActivationOffload = OffloadTier.Cpu }, options, reference: false);

        for (int s = 0; s < kept.Losses.Length; s++) Assert.Equal(kept.Losses[s], moved.Losses[s], 5);
        for (int u = 0; u < kept.Master.Length; u++)
            for (int i = 0; i < kept.Master[u].Length; i++) Assert.Equal(kept.Master[u][i], moved.Master[u][i], 1e-6f);
    }

    [Fact]
    public void Given_cpu_checkpoints_with_nothing_offloaded_When_the_engine_is_asked_Then_it_refuses_naming_offload_params()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        var resident = LayerwiseTrainerTests.Small() with { ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, ActivationOffload = OffloadTier.Cpu };

        var e = Assert.Throws<ArgumentException>(() => EngineSettings.Check(spec, resident, LayerwiseTrainerTests.Options(), Units.Bytes.FromGiB(64)));
        Assert.Contains("--offload-params cpu", e.Message);
    }
}
