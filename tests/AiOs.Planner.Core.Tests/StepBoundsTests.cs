using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>The step's lower bounds at NVMe scale (issue 14 item 6): present for NVMe plans, and the prediction never beats one.</summary>
public class StepBoundsTests
{
    private static PlanResult Plan(string model, string hardware, TrainingSettings s) =>
        TrainingPlanner.Plan(ModelCatalog.Default.Load(model), ProfileCatalog.Default.Load(hardware), SettingsRules.Resolve(s, stageGiven: false));

    private static TrainingSettings Nvme(ExecutorKind executor) => new()
    {
        ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme", ActivationCheckpointing = true,
        MicroBatch = 1, SubGroupSize = 100_000_000, BufferSize = 300_000_000, Executor = executor,
    };

    [Theory]
    [InlineData("llama-2-7b", "rtx4090-64gb-pcie4", ExecutorKind.Aios)]
    [InlineData("llama-2-7b", "rtx4090-64gb-pcie4", ExecutorKind.DeepSpeed)]
    [InlineData("gpt2-xl", "h200-1x", ExecutorKind.Aios)]
    public void Given_an_nvme_plan_When_bounded_Then_every_resource_has_a_bound_the_prediction_does_not_beat(string model, string hardware, ExecutorKind executor)
    {
        var plan = Plan(model, hardware, Nvme(executor));
        Assert.True(plan.Feasible, string.Join("; ", plan.Problems));

        var bounds = StepBounds.Of(plan);

        Assert.Equal(["compute", "pcie h2d", "pcie d2h", "nvme", "cpu adam"], bounds.Select(b => b.Resource));
        foreach (var b in bounds)
        {
            Assert.True(b.Ratio >= 1, $"{b.Resource}: the predicted {plan.Step!.Time} is below the bound {b.Time} ({b.Basis})");
            double ratio = plan.Step!.Time.Seconds / b.Time.Seconds;
            Assert.InRange(b.Ratio, ratio * (1 - 1e-6), ratio * (1 + 1e-6));
        }
    }

    [Fact]
    public void Given_a_plan_without_nvme_When_bounded_Then_there_are_none()
    {
        var plan = Plan("gpt2-xl", "h200-1x", new TrainingSettings { MicroBatch = 8 });

        Assert.Empty(StepBounds.Of(plan));
        Assert.Null(PlanDocument.Record(plan).LowerBounds);
    }

    [Fact]
    public void Given_an_nvme_plan_When_written_Then_the_document_carries_the_same_bounds()
    {
        var plan = Plan("llama-2-7b", "rtx4090-64gb-pcie4", Nvme(ExecutorKind.Aios));

        var record = PlanDocument.Record(plan);

        Assert.Equal(StepBounds.Of(plan).Select(b => (b.Resource, b.Time.Seconds)), record.LowerBounds!.Select(b => (b.Resource, b.TimeS)));
    }
}
