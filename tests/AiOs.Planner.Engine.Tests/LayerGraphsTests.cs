using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// <c>--cuda-graphs</c> (<see cref="LayerGraphs"/>): the resident trainer replaying its layers from CUDA graphs trains as it does
/// eagerly, and the settings the graphs cannot run are refused with their fix.
/// </summary>
public sealed class LayerGraphsTests
{
    private const int Steps = 6;

    private static TrainingSettings Resident(Precision precision, int accumulation) => LayerwiseTrainerTests.Small(precision) with
    {
        ParamOffload = OffloadTier.None,
        OptimizerOffload = OffloadTier.None,
        ActivationCheckpointing = false,
        GradAccumulation = accumulation,
    };

    private static (double[] Losses, float[][] Master, long Replays) Run(ModelSpec spec, TrainingSettings settings, EngineOptions options, bool warmUp)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var losses = new double[Steps];
        TokenBatch Batch(int step, int micro) => data.Sample(options.Seed, step, micro, settings.MicroBatch, settings.SeqLen);
        using var t = new DeviceTrainer(spec, settings, options);
        if (warmUp) t.WarmUp(Batch(99, 0));
        for (int s = 0; s < Steps; s++) losses[s] = t.Step(m => Batch(s, m)).Loss;
        return (losses, Enumerable.Range(0, spec.NumLayers + 1).Select(t.MasterOf).ToArray(), t.GraphReplays);
    }

    /// <summary>
    /// The graphs replay the eager pass's kernels on the same values, so with deterministic kernels the losses and master weights
    /// are the eager run's to the bit: at one micro-batch (the layers' gradient buffers are the graphs' own), with fp32 sums
    /// (bf16, accumulation 2) and with the buffers copied and added (fp32, accumulation 2); with dropout, re-seeded before each
    /// layer's replay as before its eager forward; captured at the warm-up or, without one, at the first step.
    /// </summary>
    [GpuTheory]
    [InlineData(Precision.Bf16, 1, 0.1, true)]
    [InlineData(Precision.Bf16, 2, 0.1, false)]
    [InlineData(Precision.Fp32, 2, 0.0, true)]
    [InlineData(Precision.Fp32, 1, 0.1, false)]
    [InlineData(Precision.Fp16, 1, 0.1, true)] // the loss scale multiplies the head's gradient the last layer's graph is given
    [InlineData(Precision.Bf16, 1, 0.0, true, "tiny-llama")] // RMSNorm, rotary tables, grouped-query heads, SwiGLU
    public void Given_a_resident_run_on_cuda_When_its_layers_replay_from_cuda_graphs_Then_it_trains_as_the_eager_run_to_the_bit(
        Precision precision, int accumulation, double dropout, bool warmUp, string model = "tiny-gpt")
    {
        CudaDeterminism.Require();
        ModelSpec spec = ModelCatalog.Default.Load(model) with { Dropout = dropout };
        TrainingSettings settings = Resident(precision, accumulation);
        EngineOptions options = LayerwiseTrainerTests.Options(new GradientClipping(0.5, ClipMode.PerUnit)) with { Device = "cuda" };

        var graphs = Run(spec, settings with { CudaGraphs = true }, options, warmUp);
        var eager = Run(spec, settings, options, warmUp);

        // Every layer's forward and backward replayed at every micro-batch; the eager run replayed none.
        Assert.Equal((long)Steps * accumulation * spec.NumLayers * 2, graphs.Replays);
        Assert.Equal(0, eager.Replays);
        Assert.Equal(eager.Losses, graphs.Losses);
        for (int u = 0; u < eager.Master.Length; u++) Assert.Equal(eager.Master[u], graphs.Master[u]);
        // Training moved the weights (a run that replayed nothing would keep the losses flat).
        Assert.NotEqual(graphs.Losses[0], graphs.Losses[^1]);
    }

    [Theory]
    [InlineData("cpu", false, OffloadTier.None, "use --device cuda")]
    [InlineData("cuda", true, OffloadTier.None, "--grad-checkpointing recomputes the layer")]
    [InlineData("cuda", false, OffloadTier.Cpu, "drop --cuda-graphs or the offload flags")]
    public void Given_settings_the_graphs_cannot_run_When_checked_Then_the_engine_refuses_them_naming_the_fix(
        string device, bool checkpointing, OffloadTier offload, string fix)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Resident(Precision.Fp32, 1) with
        {
            ActivationCheckpointing = checkpointing, ParamOffload = offload, OptimizerOffload = offload, CudaGraphs = true,
        };
        EngineOptions options = LayerwiseTrainerTests.Options() with { Device = device };

        var e = Assert.Throws<ArgumentException>(() => EngineSettings.Check(spec, settings, options, Units.Bytes.FromGiB(64)));

        Assert.Contains("--cuda-graphs", e.Message);
        Assert.Contains(fix, e.Message);
        // Without the graphs the same settings pass.
        EngineSettings.Check(spec, settings with { CudaGraphs = false }, options, Units.Bytes.FromGiB(64));
    }
}
