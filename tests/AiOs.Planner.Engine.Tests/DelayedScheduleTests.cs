using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Optim;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The delayed schedule (one-step delayed parameter update) against a plain loop that does exactly what it promises: steps
/// 1..delayed_warmup_steps serial, then step i+1's gradient taken at θ_{i−1} and applied to θ_i, with the same AdamW, the same data and dropout.
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class DelayedScheduleTests : IDisposable
{
    private const int Steps = 5;
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-dpu-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    private static TrainingSettings Settings(int accumulation, OffloadTier parameters = OffloadTier.Cpu, OffloadTier optimizer = OffloadTier.Cpu) =>
        LayerwiseTrainerTests.Small() with
        {
            GradAccumulation = accumulation,
            ParamOffload = parameters,
            OptimizerOffload = optimizer,
            GradientOffload = OffloadTier.Cpu,
            Schedule = StepSchedule.Delayed,
        };

    private static TokenBatch Batch(TokenDataset data, TrainingSettings s, int step, int micro) =>
        data.Sample(LayerwiseTrainerTests.Options().Seed, step, micro, s.MicroBatch, s.SeqLen);

    /// <summary>
    /// The reference: a whole model in fp32, its gradients into one of two stores; steps 1..<paramref name="serialSteps"/> (the warm-up)
    /// update serially, after them the update of step i is applied after step i+1's gradient.
    /// </summary>
    private static (double[] Losses, float[][] Master) Reference(ModelSpec spec, TrainingSettings s, int serialSteps)
    {
        EngineOptions options = LayerwiseTrainerTests.Options();
        var data = TokenDataset.Load(BundledText.DefaultPath);
        using InitialWeights initial = InitialWeights.Open(spec, options.Seed, null);
        using var model = new GptModel(spec, ScalarType.Float32, new Device("cpu"));
        long[] elements = Enumerable.Range(0, model.UnitCount).Select(u => model.Unit(u).Layout.Elements).ToArray();
        using var optim = new OptimizerStates(elements, StorageTier.Cpu, long.MaxValue, EngineSettings.Optimizer(options), null, new IoCounters(), new SpanTrace(TimeProvider.System));
        CpuGradientStore[] grads = [new(elements, new SpanTrace(TimeProvider.System)), new(elements, new SpanTrace(TimeProvider.System))];
        void WriteBack(int unit, long offset, ReadOnlySpan<float> master)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            model.Unit(unit).Flat.narrow(0, offset, master.Length).copy_(tensor(master.ToArray()));
        }
        int u0 = 0;
        foreach (float[] values in initial.InOrder(elements.Length))
        {
            optim.Initialise(u0, values);
            WriteBack(u0++, 0, values);
        }
        var groups = Enumerable.Range(0, model.UnitCount).SelectMany(optim.SubGroupsOf).ToArray();
        void Apply(int step, CpuGradientStore g)
        {
            float[] scales = GradientScales.All(g.SumOfSquares, model.UnitCount, options.Clipping, 1);
            optim.Update(groups, g, u => scales[u], step, WriteBack);
        }
        var losses = new double[Steps];
        int? pending = null;
        for (int step = 1; step <= Steps; step++)
        {
            CpuGradientStore store = grads[step % 2];
            for (int micro = 0; micro < s.GradAccumulation; micro++)
            {
                using TokenBatch batch = Batch(data, s, step - 1, micro);
                using var scope = NewDisposeScope();
                Tensor l = model.Loss(batch.Inputs, batch.Targets, s.GradAccumulation, new DropoutReplay(options.Seed, step, micro));
                losses[step - 1] += l.item<float>();
                l.backward();
                for (int u = 0; u < model.UnitCount; u++) store.Accumulate(u, model.Unit(u), micro == 0, micro == s.GradAccumulation - 1);
            }
            // The previous step's update lands only now: this step's gradient was taken before it (at θ_{step−2}).
            if (pending is { } p) Apply(p, grads[p % 2]);
            pending = null;
            if (step <= serialSteps) Apply(step, store);
            else pending = step;
        }
        if (pending is { } last) Apply(last, grads[last % 2]);
        return (losses, Enumerable.Range(0, model.UnitCount).Select(optim.ReadMaster).ToArray());
    }

    private static (double[] Losses, float[][] Master) Engine(ModelSpec spec, TrainingSettings s)
    {
        var data = TokenDataset.Load(BundledText.DefaultPath);
        using var t = new LayerwiseTrainer(spec, s, LayerwiseTrainerTests.Options());
        var losses = new double[Steps];
        for (int step = 0; step < Steps; step++) losses[step] = t.Step(m => Batch(data, s, step, m)).Loss;
        return (losses, Enumerable.Range(0, spec.NumLayers + 1).Select(t.MasterOf).ToArray());
    }

    [Theory]
    [InlineData(1, OffloadTier.Cpu, OffloadTier.Cpu)]
    [InlineData(2, OffloadTier.Cpu, OffloadTier.Cpu)]
    [InlineData(1, OffloadTier.Cpu, OffloadTier.Nvme)]
    [InlineData(2, OffloadTier.None, OffloadTier.Cpu)]
    [InlineData(1, OffloadTier.Nvme, OffloadTier.Nvme)]
    [InlineData(1, OffloadTier.Nvme, OffloadTier.Cpu)]
    public void Given_the_delayed_schedule_When_trained_Then_losses_and_weights_equal_a_loop_applying_each_update_one_step_late(int accumulation,
        OffloadTier parameters, OffloadTier optimizer)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings s = Settings(accumulation, parameters, optimizer) with { NvmePath = _nvme };

        var (losses, master) = Engine(spec, s);
        var (refLosses, refMaster) = Reference(spec, s, s.DelayedWarmupSteps);
        var (serialLosses, _) = Reference(spec, s, serialSteps: Steps);

        for (int i = 0; i < Steps; i++) Assert.Equal(refLosses[i], losses[i]);
        for (int u = 0; u < master.Length; u++) Assert.Equal(refMaster[u], master[u]);
        // Staleness shows from step 3 on (step 3 computes at θ_1, the serial loop at θ_2): the test can tell the schedules apart.
        Assert.Equal(serialLosses[1], losses[1], 5);
        Assert.NotEqual(serialLosses[2], losses[2], 3);
    }

    [Fact]
    public void Given_a_warm_up_of_3_steps_When_trained_delayed_Then_steps_1_to_3_equal_the_serial_schedule_and_the_delay_starts_after_step_3()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings s = Settings(1) with { DelayedWarmupSteps = 3 };

        var (losses, master) = Engine(spec, s);
        var (serial, _) = Engine(spec, s with { Schedule = StepSchedule.DeepSpeed });
        var (refLosses, refMaster) = Reference(spec, s, serialSteps: 3);
        var (oneStepWarmUp, _) = Reference(spec, s, serialSteps: 1);

        // Steps 1-3 update serially, so step 4 still computes at θ_3 as the serial schedule does; step 5 computes at θ_3, not θ_4.
        for (int i = 0; i < 4; i++) Assert.Equal(serial[i], losses[i]);
        Assert.NotEqual(serial[4], losses[4], 3);
        for (int i = 0; i < Steps; i++) Assert.Equal(refLosses[i], losses[i]);
        for (int u = 0; u < master.Length; u++) Assert.Equal(refMaster[u], master[u]);
        // The warm-up is what the setting says: a one-step warm-up is already stale at step 3.
        Assert.NotEqual(oneStepWarmUp[2], losses[2], 3);
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(3, 2)]
    [InlineData(3, 4)]
    public void Given_a_checkpoint_When_resumed_Then_the_next_steps_equal_the_uninterrupted_run_that_saved_it(int warmUp, int saveAfter)
    {
        // A resume at step k continues serially while k ≤ the warm-up (saveAfter 2 of 3) and delayed after it.
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings s = Settings(1) with { DelayedWarmupSteps = warmUp };
        var data = TokenDataset.Load(BundledText.DefaultPath);
        string root = Path.Combine(_nvme, "ckpt");
        double[] Run(LayerwiseTrainer t, int from) => Enumerable.Range(from, Steps - from).Select(i => t.Step(m => Batch(data, s, i, m)).Loss).ToArray();

        double[] whole;
        float[] wholeMaster;
        string folder;
        using (var t = new LayerwiseTrainer(spec, s, LayerwiseTrainerTests.Options()))
        {
            for (int i = 0; i < saveAfter; i++) t.Step(m => Batch(data, s, i, m));
            folder = t.SaveCheckpoint(root);
            whole = Run(t, saveAfter);
            wholeMaster = t.MasterOf(0);
        }
        using var resumed = new LayerwiseTrainer(spec, s, LayerwiseTrainerTests.Options());
        resumed.RestoreCheckpoint(folder);
        double[] after = Run(resumed, saveAfter);

        Assert.Equal(whole, after);
        Assert.Equal(wholeMaster, resumed.MasterOf(0));
    }

    [Theory]
    [InlineData(OffloadTier.Cpu, true)]
    [InlineData(OffloadTier.None, false)]
    [InlineData(OffloadTier.Nvme, false)]
    public void Given_the_delayed_schedule_When_built_Then_only_parameters_in_ram_are_double_buffered_and_the_program_agrees(OffloadTier parameters, bool doubled)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        using var t = new LayerwiseTrainer(spec, Settings(1, parameters) with { NvmePath = _nvme }, LayerwiseTrainerTests.Options());

        Assert.Equal(doubled, t.DoubleBufferedParameters);
        // The swap moves no bytes: the program's write-back of θ carries none exactly when the engine swaps.
        Assert.Equal(doubled, Assert.Single(t.Program.Ops, o => o.Kind == OpKind.MasterWriteBack).Bytes.Value == 0);
    }

    [Theory]
    [InlineData(Precision.Bf16)]
    [InlineData(Precision.Fp16)]
    public void Given_half_precision_parameters_in_ram_When_trained_delayed_Then_the_spare_copies_written_in_the_adam_pass_equal_the_serial_write_back_from_the_master(Precision precision)
    {
        // bf16 and fp16 take the Adam kernels' in-pass write into the spare copy (fp16 cast chunk by chunk inside the pass);
        // parameters on NVMe take the serial cast from the master.
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings s = Settings(1) with { Precision = precision, NvmePath = _nvme };

        var (ram, ramMaster) = Engine(spec, s);
        var (nvme, nvmeMaster) = Engine(spec, s with { ParamOffload = OffloadTier.Nvme });

        Assert.Equal(nvme, ram);
        for (int u = 0; u < ramMaster.Length; u++) Assert.Equal(nvmeMaster[u], ramMaster[u]);
    }

    [Fact]
    public void Given_a_delayed_step_after_the_warm_up_When_traced_Then_its_spans_are_its_passes_and_the_previous_steps_update_one_for_one()
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt");
        TrainingSettings s = Settings(2);
        var data = TokenDataset.Load(BundledText.DefaultPath);
        using var t = new LayerwiseTrainer(spec, s, LayerwiseTrainerTests.Options());
        for (int i = 0; i < 3; i++) t.Step(m => Batch(data, s, i, m));

        var spans = t.Trace.SpansOf(3).Where(x => x.OpId >= 0).ToList();
        Assert.Equal(t.Program.Ops.Select(o => o.Id).Order(), spans.Select(x => x.OpId).Order());
        // Step 2 deferred its update: its own spans hold no optimizer operation.
        Assert.DoesNotContain(t.Trace.SpansOf(2).Where(x => x.OpId >= 0), x => t.Program.Ops[x.OpId].Phase == StepPhase.Optimizer);
    }
}
