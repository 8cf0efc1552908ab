using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The <c>aios</c> executor's dispatch floors: the resident engine launches unit after unit without waiting for the
/// device (it waits at the loss and before the update), so a launch-bound stretch takes its floors (autograd forward,
/// backward), and units queued behind a long one run in their work alone.
/// </summary>
public class EngineDispatchFloorTests
{
    private static readonly HardwareProfile Lent = ProfileCatalog.Default.Load("h200-1x-calibrated");

    private static HardwareProfile WithFloors(double noGradUs, double autogradUs, double backwardUs) =>
        Lent with
        {
            Gpu = Lent.Gpu! with
            {
                EngineKernels = Lent.Gpu!.EngineKernels! with
                {
                    LayerLaunchFloorUs = noGradUs, AutogradLaunchFloorUs = autogradUs, BackwardLaunchFloorUs = backwardUs,
                },
            },
        };

    private static readonly TrainingSettings MicroBatchOne = new() { MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, Executor = ExecutorKind.Aios };

    [Fact]
    public void Given_floors_far_above_the_work_When_a_resident_step_is_predicted_Then_every_layer_pays_its_autograd_and_backward_floor()
    {
        var model = ModelCatalog.Default.Load("gpt2");
        double without = Simulator.Predict(model, WithFloors(0, 0, 0), MicroBatchOne).Time.Seconds;

        double with = Simulator.Predict(model, WithFloors(100, 5000, 9000), MicroBatchOne).Time.Seconds;

        // Per layer and for the head 5 ms + 9 ms; the rest of the step (embedding, optimizer) is at most what it was without floors.
        double floors = (model.NumLayers + 1) * (5000 + 9000) * 1e-6;
        Assert.InRange(with - floors, 0, without);
    }

    [Fact]
    public void Given_checkpointing_When_a_resident_step_is_predicted_Then_forward_pays_the_no_grad_floor_and_the_recompute_the_autograd_one()
    {
        var model = ModelCatalog.Default.Load("gpt2");
        var s = MicroBatchOne with { ActivationCheckpointing = true };
        double without = Simulator.Predict(model, WithFloors(0, 0, 0), s).Time.Seconds;

        double with = Simulator.Predict(model, WithFloors(3000, 5000, 9000), s).Time.Seconds;

        // Layers: forward without autograd, recompute, backward; the head: forward with autograd, backward.
        double floors = model.NumLayers * (3000 + 5000 + 9000) * 1e-6 + (5000 + 9000) * 1e-6;
        Assert.InRange(with - floors, 0, without);
    }

    [Fact]
    public void Given_cuda_graphs_When_a_launch_bound_resident_step_is_predicted_Then_each_layer_pays_the_replay_floor_not_its_dispatch()
    {
        var model = ModelCatalog.Default.Load("gpt2");
        var floored = WithFloors(100, 5000, 9000);
        double eager = Simulator.Predict(model, floored, MicroBatchOne).Time.Seconds;
        double work = Simulator.Predict(model, WithFloors(0, 0, 0), MicroBatchOne).Time.Seconds;

        double graphs = Simulator.Predict(model, floored, MicroBatchOne with { CudaGraphs = true }).Time.Seconds;

        // Never under the device's work; above it at most the head's floors (it is not captured: 5 ms + 9 ms) and the layers' replays.
        double head = (5000 + 9000) * 1e-6;
        double replays = model.NumLayers * 2 * floored.Gpu!.EngineKernels!.GraphReplayFloor.Seconds;
        Assert.InRange(graphs, work, work + head + replays);
        Assert.True(graphs < eager - model.NumLayers * 10e-3, $"graphs {graphs:F4} s against eager {eager:F4} s");
    }

    [Fact]
    public void Given_cuda_graphs_When_the_backward_floor_grows_Then_the_prediction_grows_by_the_eager_heads_share_alone()
    {
        // The layers replay graphs; the head's backward still runs eagerly and pays the backward floor.
        var model = ModelCatalog.Default.Load("gpt2");
        var s = MicroBatchOne with { CudaGraphs = true };
        double low = Simulator.Predict(model, WithFloors(100, 5000, 9000), s).Time.Seconds;

        double high = Simulator.Predict(model, WithFloors(100, 5000, 50_000), s).Time.Seconds;

        // One head backward: 41 ms more at most, and more than nothing (the layers' replays do not move).
        Assert.InRange(high - low, 1e-3, 41e-3 + 1e-6);
    }

    [Fact]
    public void Given_cuda_graphs_on_settings_that_cannot_replay_When_predicted_Then_the_floors_stay_the_eager_ones()
    {
        var model = ModelCatalog.Default.Load("gpt2");
        var floored = WithFloors(3000, 5000, 9000);
        var s = MicroBatchOne with { ActivationCheckpointing = true };

        // Refused by the rule (checkpointing recomputes the layers), so nothing is priced as a replay.
        Assert.NotNull(CudaGraphRule.Problem(s with { CudaGraphs = true }));
        Assert.Equal(Simulator.Predict(model, floored, s).Time, Simulator.Predict(model, floored, s with { CudaGraphs = true }).Time);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // a recompute before each backward: the host does not wait there either
    public void Given_a_head_whose_work_outlasts_the_floors_When_a_resident_step_is_priced_Then_the_next_layers_backward_run_in_their_work_and_none_takes_more_than_work_or_floor(bool checkpointing)
    {
        // gpt2 at micro-batch 8 on the H200's kernels: a layer's backward is 1.3 ms of work and the head's 12.8 ms; with
        // a 3 ms backward floor the host falls behind the head's work by nearly 10 ms, so the layers just after it find
        // their kernels launched and take their work; the last ones take the floor once that lead is spent.
        var model = ModelCatalog.Default.Load("gpt2");
        // The unfused head, whose backward is the long one (the fused head takes its gradients in forward).
        var s = MicroBatchOne with { MicroBatch = 8, ActivationCheckpointing = checkpointing, HeadLoss = HeadLoss.Unfused };
        var floored = WithFloors(300, 600, 3000);
        var program = StepScheduler.Build(model, floored, s, false, ProgramShape.For(s, floored));
        var costs = Simulator.Costs(program, floored, s);
        var work = Simulator.Costs(program, WithFloors(0, 0, 0), s);
        var floor = SimDuration.FromMicroseconds(3000);
        var backward = program.Ops.Where(o => o.Resource == ResourceKind.Compute && o.Kind == OpKind.Backward && o.Unit.Kind == UnitKind.Layer).ToList();
        Assert.All(backward, o => Assert.True(work.Duration(o, model.HiddenSize) < floor, $"layer {o.Unit.Number}'s backward work is not under the floor"));

        var durations = backward.Select(o => costs.Duration(o, model.HiddenSize)).ToList();

        Assert.True(durations[0] < floor, $"the first layer backward after the head took {durations[0]}, not its work");
        // Once the lead is spent the host sets the pace: the last backward takes its floor (under checkpointing the pair
        // of recompute and backward takes their two floors between them, the recompute's work running ahead).
        Assert.True(durations[^1] > work.Duration(backward[^1], model.HiddenSize), $"the last layer backward took {durations[^1]}, its work alone");
        if (!checkpointing) Assert.Equal(floor, durations[^1]);
        foreach (var op in program.Ops.Where(o => o.Resource == ResourceKind.Compute && o.Kind != OpKind.OptimizerStep && !(o.Kind == OpKind.Forward && o.Unit.Kind is UnitKind.Embedding or UnitKind.Outer)))
        {
            var opFloor = op.Kind == OpKind.Backward ? floor : SimDuration.FromMicroseconds(op.Kind == OpKind.Forward && checkpointing && op.Unit.Kind == UnitKind.Layer ? 300 : 600);
            var bound = SimDuration.Max(work.Duration(op, model.HiddenSize), opFloor);
            Assert.True(costs.Duration(op, model.HiddenSize) <= bound, $"{op.Kind} of {op.Unit} took {costs.Duration(op, model.HiddenSize)}, more than max(work, floor) {bound}");
        }
    }
}
