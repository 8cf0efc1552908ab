using AiOs.Planner.Engine.Data;
using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The engine executes the step program of <see cref="ProgramShape.Engine"/>: a steady-state step's spans carry
/// the bytes and the per-layer counts the program says, including NVMe gradients read, added to and written at
/// every micro-batch under accumulation (the engine's shape; DeepSpeed's writes them once).
/// </summary>
public sealed class StepProgramAgreementTests : IDisposable
{
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-agree-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    private static (StepProgram Program, IReadOnlyList<TraceSpan> Spans) Both(ModelSpec spec, TrainingSettings s)
    {
        using var t = new LayerwiseTrainer(spec, s, LayerwiseTrainerTests.Options());
        var data = TokenDataset.Load(BundledText.DefaultPath);
        t.Step(m => data.Sample(1, 0, m, s.MicroBatch, s.SeqLen));
        t.Trace.Drain();
        t.Step(m => data.Sample(1, 1, m, s.MicroBatch, s.SeqLen));
        return (t.Program, t.Trace.Drain());
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, 1)]
    [InlineData(StepSchedule.Overlapped, 1)]
    [InlineData(StepSchedule.DeepSpeed, 2)]
    [InlineData(StepSchedule.Overlapped, 3)]
    public void Given_EverythingOnNvme_When_AStepRuns_Then_LayersAreReadWrittenAndComputedAsTheProgramSays(StepSchedule schedule, int accumulation)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };
        TrainingSettings s = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Nvme,
            OptimizerOffload = OffloadTier.Nvme,
            NvmePath = _nvme,
            GradAccumulation = accumulation,
            Schedule = schedule,
        };

        var (program, spans) = Both(spec, s);

        for (int layer = 0; layer < spec.NumLayers; layer++)
        {
            foreach (OpKind kind in new[] { OpKind.ParamRead, OpKind.Forward, OpKind.Recompute, OpKind.Backward, OpKind.GradRead, OpKind.GradWrite })
            {
                var ops = program.Ops.Where(o => o.Kind == kind && o.TraceLayer == layer).ToArray();
                var done = spans.Where(x => x.Operation == SpanTrace.Name(kind) && x.Layer == layer).ToArray();
                Assert.True(ops.Length == done.Length, $"{kind} of layer {layer}: the program has {ops.Length}, the engine did {done.Length}.");
                Assert.Equal(ops.Sum(o => o.Bytes.Value), done.Sum(x => x.Bytes));
            }
        }
        long ProgramBytes(OpKind k) => program.Ops.Where(o => o.Kind == k).Sum(o => o.Bytes.Value);
        long EngineBytes(OpKind k) => spans.Where(x => x.Operation == SpanTrace.Name(k)).Sum(x => x.Bytes);
        Assert.Equal(ProgramBytes(OpKind.ParamWriteBack), EngineBytes(OpKind.ParamWriteBack));
        Assert.Equal(ProgramBytes(OpKind.GradWrite), EngineBytes(OpKind.GradWrite));
        Assert.Equal(program.Ops.Where(o => o.Kind == OpKind.OptimizerStep).Sum(o => o.Parameters), spec.TotalParameters);
    }
    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    public void Given_max_in_cpu_keeping_the_outer_block_and_layer_0_When_a_step_runs_Then_only_the_other_layers_are_read_and_writes_back_follow_the_program(StepSchedule schedule)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };
        TrainingSettings s = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Nvme,
            OptimizerOffload = OffloadTier.Nvme,
            NvmePath = _nvme,
            Schedule = schedule,
            MaxInCpu = AiOs.Planner.Memory.EngineMemory.OuterElements(spec) + spec.LayerParameters,
        };

        var (program, spans) = Both(spec, s);

        string read = SpanTrace.Name(OpKind.ParamRead), writeBack = SpanTrace.Name(OpKind.ParamWriteBack);
        Assert.DoesNotContain(spans, x => x.Operation == read && x.Layer is -1 or 0);
        for (int layer = 1; layer < spec.NumLayers; layer++)
        {
            var ops = program.Ops.Where(o => o.Kind == OpKind.ParamRead && o.TraceLayer == layer).ToArray();
            var done = spans.Where(x => x.Operation == read && x.Layer == layer).ToArray();
            Assert.NotEmpty(ops);
            Assert.Equal(ops.Length, done.Length);
            Assert.Equal(ops.Sum(o => o.Bytes.Value), done.Sum(x => x.Bytes));
        }
        // Every write-back ran where the program put it: kept units on the CPU, the others on NVMe, with the program's bytes.
        foreach (var resource in new[] { ResourceKind.Cpu, ResourceKind.Nvme })
        {
            var ops = program.Ops.Where(o => o.Kind == OpKind.ParamWriteBack && o.Resource == resource).ToArray();
            var done = spans.Where(x => x.Operation == writeBack && x.Resource == Simulation.ResourceNames.Of(resource, hasGpu: false)).ToArray();
            Assert.NotEmpty(ops);
            Assert.Equal(ops.Length, done.Length);
            Assert.Equal(ops.Sum(o => o.Bytes.Value), done.Sum(x => x.Bytes));
        }
    }
}
