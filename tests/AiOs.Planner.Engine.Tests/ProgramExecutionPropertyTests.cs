using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The engine executes the step program it is given: for random small models, placements, schedules and
/// accumulations, one step's spans are the program's operations one for one, in each resource's program order.
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class ProgramExecutionPropertyTests : IDisposable
{
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-exec-prop-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    public sealed record Case(int Layers, TrainingSettings Settings)
    {
        public override string ToString() =>
            $"{Layers} layer(s), params {Settings.ParamOffload}, optimizer {Settings.OptimizerOffload}, gradients {Settings.EffectiveGradientOffload}, " +
            $"{Settings.Schedule}, accumulation {Settings.GradAccumulation}, buffers {Settings.BufferCount}, prefetch {Settings.PrefetchDepth}, " +
            $"sub-group {Settings.SubGroupSize}, pipeline {Settings.PipelineRead}/{Settings.PipelineWrite}, optimizer RAM budget {Settings.OptimizerRamBudget}, " +
            $"checkpoints {Settings.ActivationOffload}, master {Settings.MasterWeights}";
    }

    private Gen<Case> Cases() =>
        from layers in Gen.Choose(1, 3)
        from parameters in Gen.Elements(OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme)
        from optimizer in Gen.Elements(OffloadTier.Cpu, OffloadTier.Nvme)
        from gradients in Gen.Elements<OffloadTier?>(null, OffloadTier.Nvme)
        from schedule in Gen.Elements(StepSchedule.DeepSpeed, StepSchedule.Overlapped, StepSchedule.Delayed)
        from accumulation in Gen.Choose(1, 3)
        from buffers in Gen.Choose(1, 3)
        from prefetch in Gen.Choose(0, 2)
        from subGroup in Gen.Elements(5_000L, 20_000L, 1_000_000L)
        from pipelineRead in Gen.Elements(true, false)
        from pipelineWrite in Gen.Elements(true, false)
        // Mixed placement: a RAM budget of 0 to 4 sub-groups' state when the optimizer is on NVMe.
        from keptGroups in Gen.Choose(0, 4)
        // Activation checkpoints kept on the device or copied to CPU RAM and back (cpu_checkpointing).
        from activations in Gen.Elements(OffloadTier.None, OffloadTier.Cpu)
        select new Case(layers, LayerwiseTrainerTests.Small() with
        {
            MicroBatch = 1,
            SeqLen = 16,
            ParamOffload = parameters,
            OptimizerOffload = optimizer,
            // The delayed schedule double-buffers gradients in RAM (the engine refuses them on NVMe).
            GradientOffload = schedule == StepSchedule.Delayed ? OffloadTier.Cpu : gradients,
            Schedule = schedule,
            GradAccumulation = accumulation,
            BufferCount = buffers,
            PrefetchDepth = prefetch,
            SubGroupSize = subGroup,
            PipelineRead = pipelineRead,
            PipelineWrite = pipelineWrite,
            OptimizerRamBudget = optimizer == OffloadTier.Nvme ? Bytes.OfElements(subGroup * keptGroups, 12) : null,
            NvmePath = _nvme,
            ActivationOffload = activations,
        });

    [Fact]
    public void Given_random_small_models_and_placements_When_a_step_runs_Then_its_spans_are_the_programs_operations_in_each_resources_order() =>
        SpansMatchProgram(Cases(), tests: 8);

    [Fact]
    public void Given_random_placements_under_the_delayed_schedule_When_a_steady_step_runs_Then_its_spans_are_the_programs_operations_write_back_included() =>
        SpansMatchProgram(Cases().Where(c => c.Settings.Schedule == StepSchedule.Delayed), tests: 4);

    [Fact]
    public void Given_random_placements_with_split_masters_When_a_step_runs_Then_its_spans_are_the_programs_operations_staged_high_halves_included() =>
        // Split masters: bf16 parameters off the device, the optimizer on NVMe, not the delayed schedule; the high halves of
        // the units still staged are copied from their staging slot (ProgramShape.StagedHighHalves), the others read from NVMe.
        SpansMatchProgram(Cases().Where(c => c.Settings.ParamOffload != OffloadTier.None && c.Settings.Schedule != StepSchedule.Delayed)
            .Select(c => c with
            {
                Settings = c.Settings with
                {
                    Precision = Precision.Bf16,
                    OptimizerOffload = OffloadTier.Nvme,
                    MasterWeights = Planner.Optim.MasterWeights.Split,
                },
            }), tests: 6);

    private static void SpansMatchProgram(Gen<Case> cases, int tests)
    {
        ModelSpec tiny = ModelCatalog.Default.Load("tiny-gpt");
        var data = TokenDataset.Load(BundledText.DefaultPath);
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            ModelSpec spec = tiny with { NumLayers = c.Layers };
            using var trainer = new LayerwiseTrainer(spec, c.Settings, LayerwiseTrainerTests.Options());
            // Delayed: step 1 is the serial warm-up, step 2 defers its update, step 3 runs it beside its own passes.
            bool delayed = c.Settings.Schedule == StepSchedule.Delayed;
            int step = delayed ? 3 : 1;
            for (int i = 0; i < step; i++) trainer.Step(m => data.Sample(1, i, m, c.Settings.MicroBatch, c.Settings.SeqLen));
            StepProgram program = trainer.Program;
            var spans = trainer.Trace.SpansOf(step).Where(s => s.OpId >= 0).ToList();

            Assert.Equal(program.Ops.Count, spans.Count);
            Assert.Equal(Enumerable.Range(0, program.Ops.Count), spans.Select(s => s.OpId).Order());
            // The delayed update runs on its own executor beside the passes: each keeps its resources' order, not the two together.
            foreach (var resource in program.Ops.GroupBy(o => (o.Resource, Update: delayed && o.Phase == StepPhase.Optimizer)))
            {
                string name = ResourceNames.Of(resource.Key.Resource, hasGpu: false);
                var executed = spans.Where(s => s.Resource == name && resource.Any(o => o.Id == s.OpId)).OrderBy(s => s.Start).Select(s => s.OpId).ToArray();
                Assert.Equal(resource.Select(o => o.Id).ToArray(), executed);
            }
            Assert.All(spans, s => Assert.Equal(SpanTrace.Name(program.Ops[s.OpId].Kind), s.Operation));
            // Delayed: θ reaches the working copies in the program's one write-back, once the passes and the update have ended.
            Assert.Equal(delayed ? 1 : 0, program.Ops.Count(o => o.Kind == OpKind.MasterWriteBack));
            if (delayed)
            {
                TraceSpan writeBack = spans.Single(s => program.Ops[s.OpId].Kind == OpKind.MasterWriteBack);
                Assert.All(spans.Where(s => s != writeBack), s => Assert.True(s.End <= writeBack.Start, $"{s.Operation} #{s.OpId} ends after the write-back starts"));
            }
            // A sub-group kept in RAM is updated in place: no state write, and a read only for gradients on NVMe.
            Assert.DoesNotContain(program.Ops, o => o.Kind == OpKind.OptimizerWrite && o.SubGroup is { KeptInRam: true });
            if (c.Settings.EffectiveGradientOffload != OffloadTier.Nvme)
                Assert.DoesNotContain(program.Ops, o => o.Kind == OpKind.OptimizerRead && o.SubGroup is { KeptInRam: true });
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(tests));
    }

    [Fact]
    public void Given_random_placements_and_schedules_on_two_ranks_When_a_step_runs_Then_each_ranks_spans_are_its_programs_operations_collectives_included()
    {
        ModelSpec tiny = ModelCatalog.Default.Load("tiny-gpt");
        var data = TokenDataset.Load(BundledText.DefaultPath);
        // The delayed schedule runs one process only (the engine refuses it on ranks).
        Prop.ForAll(Cases().Where(c => c.Settings.Schedule != StepSchedule.Delayed).ToArbitrary(), c =>
        {
            ModelSpec spec = tiny with { NumLayers = c.Layers };
            var outcomes = CollectiveThreads.Run(2, ranks =>
            {
                using var trainer = new LayerwiseTrainer(spec, c.Settings, LayerwiseTrainerTests.Options() with { RunId = $"prop-{ranks.Rank}-{Guid.NewGuid():N}" }, ranks: ranks);
                trainer.Step(m => data.Sample(1, 0, m, c.Settings.MicroBatch, c.Settings.SeqLen));
                return (trainer.Program, Spans: trainer.Trace.SpansOf(1).Where(s => s.OpId >= 0).ToList());
            }, regionBytes: 1 << 20);
            foreach (var (program, spans) in outcomes)
            {
                Assert.Contains(program.Ops, o => o.Kind == OpKind.ReduceScatter);
                Assert.Equal(c.Settings.ParamOffload != OffloadTier.None, program.Ops.Any(o => o.Kind == OpKind.AllGather && o.Unit.Kind != UnitKind.Model));
                Assert.Equal(Enumerable.Range(0, program.Ops.Count), spans.Select(s => s.OpId).Order());
                foreach (var resource in program.Ops.GroupBy(o => o.Resource))
                {
                    string name = ResourceNames.Of(resource.Key, hasGpu: false);
                    Assert.Equal(resource.Select(o => o.Id).ToArray(), spans.Where(s => s.Resource == name).OrderBy(s => s.Start).Select(s => s.OpId).ToArray());
                }
            }
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(6));
    }
}
