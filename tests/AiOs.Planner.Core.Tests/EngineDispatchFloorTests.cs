using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The <c>aios</c> executor's dispatch floors: the resident engine waits for the device after every operation, so each
/// layer pass takes at least its own floor (autograd forward, backward), whatever the step's total work.
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
}
