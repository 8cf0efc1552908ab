using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>The one phase rule, on hand-built spans (times in ns).</summary>
public class PhaseRuleTests
{
    private static Span S(ResourceKind r, StepPhase phase, int mb, long start, long end) =>
        new(-1, r, phase == StepPhase.Forward ? OpKind.Forward : OpKind.Backward, phase, 0, mb, start, end, 0);

    [Fact]
    public void Given_two_micro_batches_When_phases_are_taken_Then_forward_is_summed_over_both_not_the_first_only()
    {
        Span[] spans =
        [
            S(ResourceKind.Compute, StepPhase.Forward, 0, 0, 10),
            S(ResourceKind.Compute, StepPhase.Backward, 0, 10, 30),
            S(ResourceKind.D2h, StepPhase.Backward, 0, 30, 35),
            S(ResourceKind.Compute, StepPhase.Forward, 1, 35, 45),
            S(ResourceKind.Compute, StepPhase.Backward, 1, 45, 65),
            S(ResourceKind.D2h, StepPhase.Backward, 1, 65, 70),
            new(-1, ResourceKind.Cpu, OpKind.OptimizerStep, StepPhase.Optimizer, 0, 0, 70, 100, 0),
        ];

        var phases = PhaseTimes.From(spans, 0, 100);

        Assert.Equal(new PhaseTimes(new SimDuration(20), new SimDuration(50), new SimDuration(30)), phases);
    }

    [Fact]
    public void Given_an_update_hidden_behind_backward_When_phases_are_taken_Then_only_the_exposed_tail_is_optimizer_time()
    {
        Span[] spans =
        [
            S(ResourceKind.Compute, StepPhase.Forward, 0, 0, 10),
            S(ResourceKind.Compute, StepPhase.Backward, 0, 10, 30),
            new(-1, ResourceKind.Cpu, OpKind.OptimizerStep, StepPhase.Backward, 0, 0, 20, 40, 0),
        ];

        Assert.Equal(new PhaseTimes(new SimDuration(10), new SimDuration(30), new SimDuration(5)), PhaseTimes.From(spans, 0, 45));
    }

    [Fact]
    public void Given_a_simulated_step_with_accumulation_When_its_phases_are_read_Then_they_add_up_to_the_step_and_match_the_rule_on_its_spans()
    {
        var model = Models.ModelCatalog.Default.Load("tiny-gpt");
        var hw = Hardware.ProfileCatalog.Default.Load("ci-2core-24gb");
        var s = new Settings.TrainingSettings { MicroBatch = 1, SeqLen = 32, GradAccumulation = 3, ZeroStage = Settings.ZeroStage.Infinity, OptimizerOffload = Settings.OffloadTier.Cpu };

        var step = Simulator.Predict(model, hw, s, keepTimeline: true);

        Assert.Equal(step.Time, step.Phases.Forward + step.Phases.Backward + step.Phases.Optimizer);
        Assert.Equal(PhaseTimes.From(step.Spans!.ToList()), step.Phases);
        // Three micro-batches' forwards, each at least as long as the first micro-batch's forward compute.
        long firstForward = step.Spans!.Where(x => x.MicroBatch == 0 && x.Phase == StepPhase.Forward && x.Resource == ResourceKind.Compute).Sum(x => x.EndNs - x.StartNs);
        Assert.True(step.Phases.Forward.Nanoseconds >= 3 * firstForward, $"forward {step.Phases.Forward} < 3 × {firstForward} ns");
    }
}
