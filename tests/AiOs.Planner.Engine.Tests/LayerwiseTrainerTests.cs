using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

public sealed class LayerwiseTrainerTests : IDisposable
{
    private const int Steps = 20;
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-nvme-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    internal static TrainingSettings Small(Precision precision = Precision.Fp32) => new()
    {
        ZeroStage = ZeroStage.Infinity,
        MicroBatch = 2,
        SeqLen = 32,
        GradAccumulation = 2,
        Precision = precision,
        SubGroupSize = 20_000,
        BufferCount = 2,
        PrefetchDepth = 1,
        ActivationCheckpointing = true,
    };

    internal static EngineOptions Options(GradientClipping? clip = null) => new()
    {
        Seed = 42,
        Adam = new() { LearningRate = 3e-3 },
        Clipping = clip,
    };

    internal static (double[] Losses, float[][] Master) Run(ModelSpec spec, TrainingSettings settings, EngineOptions options, bool reference)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        var losses = new double[Steps];
        TokenBatch Batch(int step, int micro) => data.Sample(options.Seed, step, micro, settings.MicroBatch, settings.SeqLen);
        if (reference)
        {
            using var r = new ReferenceTrainer(spec, settings, options);
            for (int s = 0; s < Steps; s++) losses[s] = r.Step(m => Batch(s, m)).Loss;
            return (losses, Enumerable.Range(0, spec.NumLayers + 1).Select(r.MasterOf).ToArray());
        }
        using var t = new LayerwiseTrainer(spec, settings, options);
        for (int s = 0; s < Steps; s++) losses[s] = t.Step(m => Batch(s, m)).Loss;
        return (losses, Enumerable.Range(0, spec.NumLayers + 1).Select(t.MasterOf).ToArray());
    }

    private static readonly Lazy<(double[] Losses, float[][] Master)> GptReference =
        new(() => Run(ModelCatalog.Default.Load("tiny-gpt"), Small(), Options(), reference: true));

    public static TheoryData<OffloadTier, OffloadTier, StepSchedule> Placements()
    {
        var data = new TheoryData<OffloadTier, OffloadTier, StepSchedule>();
        foreach (var p in new[] { OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme })
            foreach (var o in new[] { OffloadTier.Cpu, OffloadTier.Nvme })
                foreach (var s in new[] { StepSchedule.DeepSpeed, StepSchedule.Overlapped })
                    data.Add(p, o, s);
        return data;
    }

    [Theory]
    [MemberData(nameof(Placements))]
    public void Given_TinyGpt_When_TrainedWithOffload_Then_LossesAndWeightsEqualTheInMemoryReference(OffloadTier parameters, OffloadTier optimizer, StepSchedule schedule)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Small() with
        {
            ParamOffload = parameters,
            OptimizerOffload = optimizer,
            Schedule = schedule,
            NvmePath = _nvme,
            PipelineRead = optimizer == OffloadTier.Nvme,
            PipelineWrite = optimizer == OffloadTier.Nvme && schedule == StepSchedule.DeepSpeed,
        };

        var (losses, master) = Run(spec, settings, Options(), reference: false);
        var (refLosses, refMaster) = GptReference.Value;

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 5);
        Assert.True(refLosses[^1] < refLosses[0] - 0.5, $"The reference did not learn: {refLosses[0]} → {refLosses[^1]}.");
        for (int u = 0; u < master.Length; u++) AssertClose(refMaster[u], master[u], 1e-5f);
        Assert.Empty(Directory.GetDirectories(_nvme));
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    public void Given_GradientsOnNvmeWithTheOptimizerOnCpu_When_Trained_Then_LossesEqualTheReference(StepSchedule schedule)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Small() with
        {
            ParamOffload = OffloadTier.Cpu,
            OptimizerOffload = OffloadTier.Cpu,
            GradientOffload = OffloadTier.Nvme,
            Schedule = schedule,
            NvmePath = _nvme,
        };

        var (losses, master) = Run(spec, settings, Options(), reference: false);

        for (int s = 0; s < Steps; s++) Assert.Equal(GptReference.Value.Losses[s], losses[s], 5);
        for (int u = 0; u < master.Length; u++) AssertClose(GptReference.Value.Master[u], master[u], 1e-5f);
    }

    [Fact]
    public void Given_TinyGptInBf16_When_ParametersOnNvmeDeepSpeedSchedule_Then_LossesEqualTheBf16Reference()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Small(Precision.Bf16) with { ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Cpu, NvmePath = _nvme };

        var (losses, master) = Run(spec, settings, Options(), reference: false);
        var (refLosses, refMaster) = Run(spec, settings, Options(), reference: true);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 4);
        Assert.NotEqual(GptReference.Value.Losses[^1], losses[^1], 6);
        for (int u = 0; u < master.Length; u++) AssertClose(refMaster[u], master[u], 1e-4f);
    }

    [Fact]
    public void Given_TinyLlamaInBf16_When_ParametersAndOptimizerOnNvmeOverlapped_Then_LossesEqualTheReference()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-llama");
        TrainingSettings settings = Small(Precision.Bf16) with
        {
            ParamOffload = OffloadTier.Nvme,
            OptimizerOffload = OffloadTier.Nvme,
            Schedule = StepSchedule.Overlapped,
            NvmePath = _nvme,
            PipelineRead = true,
            PipelineWrite = true,
        };
        EngineOptions options = Options(new GradientClipping(0.5, ClipMode.PerUnit));

        var (losses, master) = Run(spec, settings, options, reference: false);
        var (refLosses, refMaster) = Run(spec, settings, options, reference: true);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 4);
        Assert.True(refLosses[^1] < refLosses[0] - 0.3, $"The reference did not learn: {refLosses[0]} → {refLosses[^1]}.");
        for (int u = 0; u < master.Length; u++) AssertClose(refMaster[u], master[u], 1e-4f);
    }

    [Fact]
    public void Given_Dropout_When_TrainedLayerByLayerWithRecomputation_Then_MasksReplayAndLossesEqualTheReference()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt") with { Dropout = 0.1 };
        TrainingSettings settings = Small() with { ParamOffload = OffloadTier.Nvme, NvmePath = _nvme, Schedule = StepSchedule.Overlapped };

        var (losses, _) = Run(spec, settings, Options(), reference: false);
        var (refLosses, _) = Run(spec, settings, Options(), reference: true);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 5);
        Assert.NotEqual(GptReference.Value.Losses[0], losses[0], 4);
    }

    [Fact]
    public void Given_GlobalNormClipping_When_DeepSpeedScheduleOnNvme_Then_LossesEqualTheReferenceAndDifferFromUnclipped()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Small() with { ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Nvme, NvmePath = _nvme };
        EngineOptions options = Options(new GradientClipping(0.05, ClipMode.GlobalNorm));

        var (losses, _) = Run(spec, settings, options, reference: false);
        var (refLosses, _) = Run(spec, settings, options, reference: true);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 5);
        Assert.NotEqual(GptReference.Value.Losses[^1], losses[^1], 3);
    }

    [Fact]
    public void Given_GlobalNormClipping_When_OverlappedSchedule_Then_TheEngineRefusesBeforeStarting()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Small() with { Schedule = StepSchedule.Overlapped };

        var e = Assert.Throws<ArgumentException>(() => new LayerwiseTrainer(spec, settings, Options(new GradientClipping(1, ClipMode.GlobalNorm))));

        Assert.Contains("global-norm clipping", e.Message);
    }

    internal static void AssertClose(float[] expected, float[] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        int worst = 0;
        float worstDiff = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            float d = Math.Abs(expected[i] - actual[i]);
            if (d > worstDiff) (worst, worstDiff) = (i, d);
        }
        Assert.True(worstDiff <= tolerance, $"Element {worst}: expected {expected[worst]}, got {actual[worst]}.");
    }
}
