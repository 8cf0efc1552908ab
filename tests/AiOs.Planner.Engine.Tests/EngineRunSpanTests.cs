using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The run record's span: its phase is the phase of the program operation its op id names.</summary>
public sealed class EngineRunSpanTests
{
    private static readonly StepProgram Program = EngineProgram.For(ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 2 },
        LayerwiseTrainerTests.Small() with { ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu });

    private static TraceSpan SpanOf(int opId) => new(1, 0, "gpu", "forward", 0, new SimDuration(10), new SimDuration(20), OpId: opId);

    [Fact]
    public void Given_a_span_of_each_program_operation_When_recorded_Then_its_phase_is_the_operations()
    {
        foreach (Operation op in Program.Ops)
            Assert.Equal(op.Phase.ToString().ToLowerInvariant(), EngineRun.Span(SpanOf(op.Id), Program).Phase);
        Assert.Equal(3, Program.Ops.Select(o => EngineRun.Span(SpanOf(o.Id), Program).Phase).Distinct().Count());
    }

    [Fact]
    public void Given_a_stall_an_unknown_op_id_or_no_program_When_recorded_Then_the_phase_is_null()
    {
        Assert.Null(EngineRun.Span(SpanOf(-1), Program).Phase);
        Assert.Null(EngineRun.Span(SpanOf(Program.Ops.Count), Program).Phase);
        Assert.Null(EngineRun.Span(SpanOf(0), program: null).Phase);
    }
}
