using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

public sealed class DeviceTrainerTests
{
    private const int Steps = 12;

    public DeviceTrainerTests() => TorchRuntime.EnsureReady();

    private static TrainingSettings Resident(Precision precision, bool checkpointing, int accumulation = 2) => LayerwiseTrainerTests.Small(precision) with
    {
        ParamOffload = OffloadTier.None,
        OptimizerOffload = OffloadTier.None,
        ActivationCheckpointing = checkpointing,
        GradAccumulation = accumulation,
    };

    private static (double[] Losses, float[][] Master) Run(ModelSpec spec, TrainingSettings settings, EngineOptions options, bool reference)
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
        using var t = new DeviceTrainer(spec, settings, options);
        for (int s = 0; s < Steps; s++) losses[s] = t.Step(m => Batch(s, m)).Loss;
        return (losses, Enumerable.Range(0, spec.NumLayers + 1).Select(t.MasterOf).ToArray());
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(true, 3)]
    public void Given_a_resident_step_When_it_runs_Then_each_program_operation_has_one_span_with_its_id_in_program_order_and_the_phases_are_cores(bool checkpointing, int accumulation)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 2 };
        var data = TokenDataset.Load(BundledText.DefaultPath);
        using var trainer = new DeviceTrainer(spec, Resident(Precision.Fp32, checkpointing, accumulation), LayerwiseTrainerTests.Options());

        var r = trainer.Step(m => data.Sample(1, 0, m, 2, 32));

        var program = trainer.Program;
        // The shape ProgramShape.For gives a run that offloads nothing: the program the simulator predicts for it.
        Assert.Equal(ProgramShape.DeepSpeed, program.Shape);
        var spans = trainer.Trace.SpansOf(1).Where(s => s.OpId >= 0).ToList();
        Assert.Equal(program.Ops.Select(o => o.Id), spans.Select(s => s.OpId));
        Assert.Equal(accumulation * (spec.NumLayers + 2), program.Ops.Count(o => o.Kind == OpKind.Forward));
        Assert.Equal(checkpointing ? accumulation * spec.NumLayers : 0, program.Ops.Count(o => o.Kind == OpKind.Recompute));
        var expected = PhaseTimes.From(TraceStats.ProgramSpans(trainer.Trace.SpansOf(1), program), spans[0].Start.Nanoseconds, spans[^1].End.Nanoseconds);
        Assert.True(r.Forward >= expected.Forward && r.Backward >= expected.Backward - new SimDuration(1_000_000), $"phases {r.Forward}/{r.Backward} against Core's {expected.Forward}/{expected.Backward}");
        Assert.True(r.Optimizer > SimDuration.Zero);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_NothingOffloadedInFp32_When_Trained_Then_LossesAndWeightsEqualTheReference(bool checkpointing)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Resident(Precision.Fp32, checkpointing);

        var (losses, master) = Run(spec, settings, LayerwiseTrainerTests.Options(), reference: false);
        var (refLosses, refMaster) = Run(spec, settings, LayerwiseTrainerTests.Options(), reference: true);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 2e-5);
        Assert.True(refLosses[^1] < refLosses[0] - 0.5, $"The reference did not learn: {refLosses[0]} → {refLosses[^1]}.");
        for (int u = 0; u < master.Length; u++) LayerwiseTrainerTests.AssertClose(refMaster[u], master[u], 2e-5f);
    }

    [Fact]
    public void Given_Bf16WithAccumulationAndGlobalClipping_When_Trained_Then_LossesFollowTheBf16Reference()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-llama");
        TrainingSettings settings = Resident(Precision.Bf16, checkpointing: false);
        EngineOptions options = LayerwiseTrainerTests.Options(new GradientClipping(0.5, ClipMode.GlobalNorm));

        var (losses, _) = Run(spec, settings, options, reference: false);
        var (refLosses, _) = Run(spec, settings, options, reference: true);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 1e-3);
        Assert.True(losses[^1] < losses[0] - 0.3, $"The run did not learn: {losses[0]} → {losses[^1]}.");
    }

    [Fact]
    public void Given_PerUnitClipping_When_Trained_Then_WeightsEqualTheReferenceWithTheSameRule()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Resident(Precision.Fp32, checkpointing: false, accumulation: 1);
        EngineOptions options = LayerwiseTrainerTests.Options(new GradientClipping(0.05, ClipMode.PerUnit));

        var (losses, master) = Run(spec, settings, options, reference: false);
        var (refLosses, refMaster) = Run(spec, settings, options, reference: true);
        var (unclipped, _) = Run(spec, settings, LayerwiseTrainerTests.Options(), reference: false);

        for (int s = 0; s < Steps; s++) Assert.Equal(refLosses[s], losses[s], 2e-5);
        Assert.NotEqual(unclipped[^1], losses[^1], 3);
        for (int u = 0; u < master.Length; u++) LayerwiseTrainerTests.AssertClose(refMaster[u], master[u], 2e-5f);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(1000L)] // every unit staged through the CPU tensor in slices of 1,000 values, as a unit over 64 Mi values is
    public void Given_ACheckpoint_When_ResumedInAFreshTrainer_Then_TheLossTrajectoryContinues(long? stagingElements)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings settings = Resident(Precision.Fp32, checkpointing: false, accumulation: 1);
        EngineOptions options = LayerwiseTrainerTests.Options();
        var data = TokenDataset.Load(BundledText.DefaultPath);
        TokenBatch Batch(int step, int micro) => data.Sample(options.Seed, step, micro, settings.MicroBatch, settings.SeqLen);
        string root = Directory.CreateTempSubdirectory("aios-ckpt-").FullName;
        try
        {
            double[] straight = new double[4];
            string folder;
            using (var t = new DeviceTrainer(spec, settings, options))
            {
                for (int s = 0; s < 4; s++)
                {
                    straight[s] = t.Step(m => Batch(s, m)).Loss;
                    if (s == 1) folder = t.SaveCheckpoint(root);
                }
            }
            using var resumed = new DeviceTrainer(spec, settings, options) { StagingElements = stagingElements };
            resumed.RestoreCheckpoint(Checkpoints.Checkpoint.Latest(root)!);
            Assert.Equal(2, resumed.CompletedSteps);
            for (int s = 2; s < 4; s++) Assert.Equal(straight[s], resumed.Step(m => Batch(s, m)).Loss, 6);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Given_Placements_When_ATrainerIsCreated_Then_OnlyNothingOffloadedRunsResident()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        using (ITrainer resident = Trainers.Create(spec, Resident(Precision.Fp32, false), LayerwiseTrainerTests.Options()))
            Assert.IsType<DeviceTrainer>(resident);
        using (ITrainer offloaded = Trainers.Create(spec, Resident(Precision.Fp32, false) with { OptimizerOffload = OffloadTier.Cpu }, LayerwiseTrainerTests.Options()))
            Assert.IsType<LayerwiseTrainer>(offloaded);
        Assert.Throws<ArgumentException>(() => new DeviceTrainer(spec, Resident(Precision.Fp32, false) with { ParamOffload = OffloadTier.Cpu }, LayerwiseTrainerTests.Options()));
    }

    [Fact]
    public void Given_AGpuMemoryLimit_When_TheDeviceIsTheCpu_Then_ItIsRefusedWithTheReason()
    {
        var e = Assert.Throws<ArgumentException>(() => DeviceMemory.Watch(CPU, Bytes.FromGiB(11)));
        Assert.Contains("--device cuda", e.Message);
        Assert.Null(DeviceMemory.Watch(CPU, null));
    }

    [Fact]
    public void Given_RandomGradients_When_TorchOpsAdamWRunsFiveSteps_Then_ItMatchesTheSpanAdamW()
    {
        const int n = 4096;
        var rng = new SplitMix64(9);
        float[] start = Enumerable.Range(0, n).Select(_ => (float)rng.NextGaussian()).ToArray();
        float[][] grads = Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, n).Select(_ => (float)(rng.NextGaussian() * 0.1)).ToArray()).ToArray();
        var options = new AdamWOptions { LearningRate = 1e-2, WeightDecay = 0.1, Beta2 = 0.95 };

        float[] master = (float[])start.Clone(), m = new float[n], v = new float[n];
        var span = new SpanAdamW(options);
        for (int s = 0; s < grads.Length; s++) span.Update(master, grads[s], m, v, s + 1, 0.5f);

        using var p = tensor(start);
        using var em = zeros(n);
        using var ev = zeros(n);
        using var working = zeros(n, ScalarType.BFloat16);
        var ops = new TorchOpsAdamW(options);
        for (int s = 0; s < grads.Length; s++)
        {
            using var g = tensor(grads[s]);
            ops.Update(p, g, em, ev, working, s + 1, 0.5f);
        }
        float[] actual = p.data<float>().ToArray();
        LayerwiseTrainerTests.AssertClose(master, actual, 1e-6f);
        Assert.Equal(p.to(ScalarType.BFloat16).to(ScalarType.Float32).data<float>().ToArray(), working.to(ScalarType.Float32).data<float>().ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Given_RandomGradients_When_HostAdamWRunsFiveStepsOnCpuTensors_Then_ItMatchesTheSpanAdamWAndWritesTheBf16Copy(bool bf16Gradients)
    {
        const int n = 5000;
        var rng = new SplitMix64(11);
        float[] start = Enumerable.Range(0, n).Select(_ => (float)rng.NextGaussian()).ToArray();
        float[][] grads = Enumerable.Range(0, 5).Select(_ => Enumerable.Range(0, n).Select(_ => (float)(rng.NextGaussian() * 0.1)).ToArray()).ToArray();
        var options = new AdamWOptions { LearningRate = 1e-2, WeightDecay = 0.1, Beta2 = 0.95 };

        float[] master = (float[])start.Clone(), m = new float[n], v = new float[n];
        var span = new SpanAdamW(options);
        using var p = tensor(start);
        using var em = zeros(n);
        using var ev = zeros(n);
        using var working = zeros(n, ScalarType.BFloat16);
        IDeviceAdamW host = DeviceAdamW.For(CPU, options);
        Assert.Equal("cpu-adam", host.Name);
        for (int s = 0; s < grads.Length; s++)
        {
            using var g32 = tensor(grads[s]);
            using var g = bf16Gradients ? g32.to(ScalarType.BFloat16) : g32.alias();
            span.Update(master, g.to(ScalarType.Float32).data<float>().ToArray(), m, v, s + 1, 0.5f);
            host.Update(p, g, em, ev, working, s + 1, 0.5f);
        }

        LayerwiseTrainerTests.AssertClose(master, p.data<float>().ToArray(), 1e-6f);
        LayerwiseTrainerTests.AssertClose(m, em.data<float>().ToArray(), 1e-6f);
        Assert.Equal(p.to(ScalarType.BFloat16).to(ScalarType.Float32).data<float>().ToArray(), working.to(ScalarType.Float32).data<float>().ToArray());
    }

    [Fact]
    public void Given_a_non_contiguous_gradient_When_HostAdamW_updates_Then_it_refuses_with_what_it_takes()
    {
        using var p = zeros(8);
        using var g = zeros(16).view(8, 2).select(1, 0);
        using var em = zeros(8);
        using var ev = zeros(8);

        var e = Assert.Throws<ArgumentException>(() => new HostAdamW(new AdamWOptions()).Update(p, g, em, ev, null, 1, 1f));

        Assert.Contains("contiguous CPU tensors", e.Message);
    }
}
