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

    /// <summary>A layer's backward time (its work, without its gradients' landing) over its forward's, floors off, resident, micro-batch 4.</summary>
    private static double Ratio(HardwareProfile hw, Precision precision)
    {
        var model = ModelCatalog.Default.Load("gpt2-medium");
        var s = new TrainingSettings { MicroBatch = 4, SeqLen = 1024, Precision = precision, Executor = ExecutorKind.Aios };
        var program = StepScheduler.Build(model, hw, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, hw, s);
        var forward = program.Ops.First(o => o.Kind == OpKind.Forward && o.Unit.Kind == UnitKind.Layer);
        var backward = program.Ops.First(o => o.Kind == OpKind.Backward && o.Unit == forward.Unit);
        // Its gradients' landing (the pack after it, ResidentAccumulationTests) is a streaming pass apart from the layer's work.
        double landing = backward.SumBytes / (hw.Gpu!.EngineKernels!.OptimizerGbps!.Value * 1e9);
        Assert.True(landing > 0);
        return (costs.Duration(backward, model.HiddenSize).Seconds - landing) / costs.Duration(forward, model.HiddenSize).Seconds;
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
    private static double[] Layer(HardwareProfile hw, bool offloaded) => Layer3Passes(hw, new TrainingSettings
    {
        MicroBatch = 1, SeqLen = 128, Precision = Precision.Bf16, Executor = ExecutorKind.Aios,
        ParamOffload = offloaded ? OffloadTier.Cpu : OffloadTier.None, OptimizerOffload = offloaded ? OffloadTier.Cpu : OffloadTier.None,
    });

    /// <summary>gpt2's layer 3's forward, recompute (0 when none) and backward durations as <paramref name="s"/> prices them on <paramref name="hw"/>.</summary>
    internal static double[] Layer3Passes(HardwareProfile hw, TrainingSettings s)
    {
        var model = ModelCatalog.Default.Load("gpt2");
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

/// <summary>
/// The layer-by-layer passes beside the CPU update (<see cref="EngineKernels.BesideUpdateFloorRatios"/>): the delayed schedule's
/// every pass, the overlapped one's backward passes, scaled in proportion to how much of them the update covers.
/// </summary>
public class EngineBesideUpdateFloorTests
{
    private static readonly HardwareProfile Lent = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly LayerwiseFloorRatios Twice = new() { Forward = 2, Recompute = 2, Backward = 2 };

    /// <summary>Launch-bound floors, the layer-by-layer ratios off, and CPU Adam at <paramref name="adamPerSecond"/> parameters a second.</summary>
    private static HardwareProfile With(LayerwiseFloorRatios? beside, double adamPerSecond) => Lent with
    {
        Gpu = Lent.Gpu! with
        {
            EngineKernels = Lent.Gpu!.EngineKernels! with
            {
                BesideUpdateFloorRatios = beside, LayerwiseFloorRatios = null, LayerLaunchFloorUs = 5000, AutogradLaunchFloorUs = 6000,
                BackwardLaunchFloorUs = 9000, KindFloors = null,
            },
        },
        Cpu = Lent.Cpu with { AdamParamsPerS = adamPerSecond, AdamBf16ParamsPerS = adamPerSecond },
    };

    /// <summary>Layer 3's forward, recompute and backward durations, parameters and optimizer in RAM, micro-batch 1.</summary>
    private static double[] Layer(HardwareProfile hw, StepSchedule schedule) => EngineLayerwiseFloorTests.Layer3Passes(hw, new TrainingSettings
    {
        MicroBatch = 1, SeqLen = 128, Precision = Precision.Bf16, Executor = ExecutorKind.Aios, Schedule = schedule,
        ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity,
    });

    [Fact]
    public void Given_an_update_longer_than_the_passes_When_the_delayed_schedule_is_priced_Then_every_launch_bound_pass_takes_the_ratio()
    {
        // 1,000 parameters a second: the update outlasts the step's passes, so it covers them all.
        double[] plain = Layer(With(null, 1e3), StepSchedule.Delayed), beside = Layer(With(Twice, 1e3), StepSchedule.Delayed);

        Assert.Equal(2, beside[0] / plain[0], 2);
        Assert.Equal(2, beside[2] / plain[2], 2);
    }

    [Fact]
    public void Given_an_update_shorter_than_the_passes_When_the_delayed_schedule_is_priced_Then_the_ratio_applies_in_proportion()
    {
        // 1e12 parameters a second: gpt2's update takes a fraction of a millisecond against 12 layers' 20 ms of floors.
        double[] plain = Layer(With(null, 1e12), StepSchedule.Delayed), beside = Layer(With(Twice, 1e12), StepSchedule.Delayed);

        Assert.InRange(beside[0] / plain[0], 1.0, 1.05);
        Assert.True(beside[0] > plain[0]);
    }

    [Fact]
    public void Given_the_overlapped_schedule_When_priced_Then_only_backward_passes_are_beside_the_update()
    {
        double[] plain = Layer(With(null, 1e3), StepSchedule.Overlapped), beside = Layer(With(Twice, 1e3), StepSchedule.Overlapped);

        Assert.Equal(plain[0], beside[0], 6);
        Assert.Equal(2, beside[2] / plain[2], 2);
    }

    [Fact]
    public void Given_the_deepspeed_schedule_When_priced_Then_nothing_runs_beside_the_update()
    {
        Assert.Equal(Layer(With(null, 1e3), StepSchedule.DeepSpeed), Layer(With(Twice, 1e3), StepSchedule.DeepSpeed));
    }
}
