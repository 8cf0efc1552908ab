using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The <c>aios</c> executor's backward with a work ratio (<see cref="EngineKernels.BackwardWorkRatio"/>): its matmuls take
/// twice the forward's, the rest the ratio of the forward's rest, so a precision whose layers are mostly matmul (fp32) has a
/// backward nearer twice its forward than one whose element-wise work weighs more (bf16).
/// </summary>
public class EngineBackwardWorkTests
{
    private static readonly HardwareProfile Lent = ProfileCatalog.Default.Load("h200-1x-calibrated");

    private static HardwareProfile With(double? workRatio) => Lent with
    {
        Gpu = Lent.Gpu! with
        {
            EngineKernels = Lent.Gpu!.EngineKernels! with
            {
                BackwardWorkRatio = workRatio is { } r ? r : null,
                LayerLaunchFloorUs = 0, AutogradLaunchFloorUs = 0, BackwardLaunchFloorUs = 0, KindFloors = null,
            },
        },
    };

    /// <summary>A layer's backward time over its forward's, floors off, resident, micro-batch 4.</summary>
    private static double Ratio(HardwareProfile hw, Precision precision)
    {
        var model = ModelCatalog.Default.Load("gpt2-medium");
        var s = new TrainingSettings { MicroBatch = 4, SeqLen = 1024, Precision = precision, Executor = ExecutorKind.Aios };
        var program = StepScheduler.Build(model, hw, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, hw, s);
        var forward = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Layer);
        var backward = program.Ops.First(o => o.Kind == OpKind.Backward && o.Unit == forward.Unit);
        return costs.Duration(backward, model.HiddenSize).Seconds / costs.Duration(forward, model.HiddenSize).Seconds;
    }

    [Fact]
    public void Given_a_work_ratio_of_two_When_a_layer_is_priced_Then_its_backward_is_twice_its_forward_in_any_precision()
    {
        Assert.Equal(2, Ratio(With(2), Precision.Bf16), 4);
        Assert.Equal(2, Ratio(With(2), Precision.Fp32), 4);
    }

    [Fact]
    public void Given_a_work_ratio_below_two_When_fp32_and_bf16_layers_are_priced_Then_fp32_s_mostly_matmul_backward_is_nearer_twice_its_forward()
    {
        var hw = With(1.4);

        double bf16 = Ratio(hw, Precision.Bf16), fp32 = Ratio(hw, Precision.Fp32);

        Assert.InRange(bf16, 1.4, 2);
        Assert.InRange(fp32, bf16 + 0.05, 2);
    }

    [Fact]
    public void Given_no_work_ratio_When_a_layer_is_priced_Then_its_backward_is_the_whole_ratio_of_its_forward()
    {
        var hw = With(null);

        Assert.Equal(hw.Gpu!.EngineKernels!.BackwardRatio.Value, Ratio(hw, Precision.Bf16), 4);
        Assert.Equal(hw.Gpu!.EngineKernels!.BackwardRatio.Value, Ratio(hw, Precision.Fp32), 4);
    }
}

/// <summary>The layer-by-layer trainer's floors (<see cref="EngineKernels.LayerwiseFloorRatios"/>) price offloaded runs only.</summary>
public class EngineLayerwiseFloorTests
{
    private static readonly HardwareProfile Lent = ProfileCatalog.Default.Load("h200-1x-calibrated");

    private static HardwareProfile With(LayerwiseFloorRatios? ratios) => Lent with
    {
        Gpu = Lent.Gpu! with
        {
            EngineKernels = Lent.Gpu!.EngineKernels! with
            {
                LayerwiseFloorRatios = ratios, LayerLaunchFloorUs = 5000, AutogradLaunchFloorUs = 6000, BackwardLaunchFloorUs = 9000, KindFloors = null,
            },
        },
    };

    /// <summary>A layer's forward, recompute (if any) and backward durations, launch-bound (floors far above the work), micro-batch 1.</summary>
    private static double[] Layer(HardwareProfile hw, bool offloaded)
    {
        var model = ModelCatalog.Default.Load("gpt2");
        var s = new TrainingSettings
        {
            MicroBatch = 1, SeqLen = 128, Precision = Precision.Bf16, Executor = ExecutorKind.Aios,
            ParamOffload = offloaded ? OffloadTier.Cpu : OffloadTier.None, OptimizerOffload = offloaded ? OffloadTier.Cpu : OffloadTier.None,
        };
        var program = StepScheduler.Build(model, hw, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, hw, s);
        var unit = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Layer && o.Unit.Number == 3).Unit;
        return [.. new[] { OpKind.Forward, OpKind.Recompute, OpKind.Backward }
            .Select(k => program.Ops.FirstOrDefault(o => o.Kind == k && o.Unit == unit) is { } op ? costs.Duration(op, model.HiddenSize).Seconds : 0)];
    }

    [Fact]
    public void Given_layer_by_layer_ratios_When_an_offloaded_step_is_priced_Then_its_launch_bound_passes_take_the_scaled_floors()
    {
        var ratios = new LayerwiseFloorRatios { Forward = 1.5, Recompute = 2, Backward = 1 };

        double[] plain = Layer(With(null), offloaded: true), scaled = Layer(With(ratios), offloaded: true);

        Assert.Equal(1.5, scaled[0] / plain[0], 2);
        Assert.Equal(2, scaled[1] / plain[1], 2);
        Assert.Equal(1, scaled[2] / plain[2], 2);
    }

    [Fact]
    public void Given_layer_by_layer_ratios_When_a_resident_step_is_priced_Then_nothing_changes()
    {
        var ratios = new LayerwiseFloorRatios { Forward = 1.5, Recompute = 2, Backward = 3 };

        Assert.Equal(Layer(With(null), offloaded: false), Layer(With(ratios), offloaded: false));
    }
}
