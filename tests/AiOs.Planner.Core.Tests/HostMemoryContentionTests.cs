using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// CPU updates beside the GPU's transfers share the host's memory: the overlapped schedule's updates pay for backward's
/// uploads and downloads, the delayed schedule's for the whole step's, DeepSpeed's (after backward) for none.
/// </summary>
public class HostMemoryContentionTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Model = ModelCatalog.Default.Load("gpt2") with { NumLayers = 4 };

    private static TrainingSettings Offloaded(StepSchedule schedule) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, Precision = Precision.Bf16,
        MicroBatch = 2, SeqLen = 256, ActivationCheckpointing = true, Schedule = schedule,
    };

    /// <summary>The host memory's rate: CPU Adam alone, 28 B a parameter.</summary>
    internal static double HostMemoryRate(HardwareProfile hw, TrainingSettings s) =>
        hw.Cpu.AdamRateFor(Optim.OptimizerStateFormat.Fp32, StepCosts.EngineAdamOnBf16Gradients(s)) * 28;

    /// <summary>Seconds per parameter an update pays for the transfers beside it: <paramref name="beside"/>'s bytes over the memory's rate, shared by parameters.</summary>
    internal static double ExtraSecondsPerParameter(StepProgram program, HardwareProfile hw, TrainingSettings s, Func<Operation, bool> beside)
    {
        long updated = program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep).Sum(o => o.Parameters);
        long bytes = program.Ops.Where(o => o.Resource is ResourceKind.H2d or ResourceKind.D2h && beside(o)).Sum(o => o.Bytes.Value);
        return bytes / HostMemoryRate(hw, s) / updated;
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    [InlineData(StepSchedule.Delayed)]
    public void Given_a_schedule_When_priced_Then_each_cpu_update_pays_the_host_memory_time_of_the_transfers_beside_it(StepSchedule schedule)
    {
        var s = Offloaded(schedule);
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, H200, s);
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineAdamOnBf16Gradients(s));
        double extra = schedule switch
        {
            StepSchedule.DeepSpeed => 0,
            StepSchedule.Overlapped => ExtraSecondsPerParameter(program, H200, s, o => o.Phase == StepPhase.Backward),
            _ => ExtraSecondsPerParameter(program, H200, s, _ => true),
        };
        var updates = program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep).ToList();

        Assert.NotEmpty(updates);
        if (schedule != StepSchedule.DeepSpeed) Assert.True(extra > 0, "the schedule runs transfers beside its updates");
        foreach (var update in updates)
            Assert.Equal(SimDuration.FromSeconds(update.Parameters / rate + update.Parameters * extra), costs.Duration(update, Model.HiddenSize));
    }

    [Fact]
    public void Given_the_overlapped_schedule_When_priced_Then_the_updates_together_pay_exactly_backward_s_transfer_bytes_over_the_memory_rate()
    {
        var s = Offloaded(StepSchedule.Overlapped);
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, H200, s);
        var alone = Simulator.Costs(program, H200, s with { Schedule = StepSchedule.DeepSpeed });
        var updates = program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep).ToList();
        long backwardBytes = program.Ops.Where(o => o.Resource is ResourceKind.H2d or ResourceKind.D2h && o.Phase == StepPhase.Backward).Sum(o => o.Bytes.Value);

        double added = updates.Sum(u => (costs.Duration(u, Model.HiddenSize) - alone.Duration(u, Model.HiddenSize)).Seconds);

        Assert.True(backwardBytes > 0);
        Assert.Equal(backwardBytes / HostMemoryRate(H200, s), added, 1e-6);
    }

    /// <summary>The H200 profile with copies beside the CPU update measured at half the pinned rate up and a quarter down.</summary>
    private static HardwareProfile Contended() => H200 with
    {
        HostLink = H200.HostLink! with
        {
            H2dPinnedBesideCpuUpdateGbps = Figure.Measured(H200.HostLink.H2dPinnedGbps.Value / 2, "2026-12-06", "test"),
            D2hPinnedBesideCpuUpdateGbps = Figure.Measured(H200.HostLink.D2hPinnedGbps.Value / 4, "2026-12-06", "test"),
        },
    };

    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    [InlineData(StepSchedule.Delayed)]
    public void Given_copies_measured_slower_beside_the_cpu_update_When_priced_Then_exactly_the_copies_the_schedule_runs_beside_it_slow_by_that_share(StepSchedule schedule)
    {
        var s = Offloaded(schedule);
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.Engine);
        var plain = Simulator.Costs(program, H200, s);
        var contended = Simulator.Costs(program, Contended(), s);
        var copies = program.Ops.Where(o => o.Resource is ResourceKind.H2d or ResourceKind.D2h).ToList();
        bool Beside(Operation o) => schedule == StepSchedule.Delayed || (schedule == StepSchedule.Overlapped && o.Phase == StepPhase.Backward);

        Assert.Contains(copies, o => o.Phase == StepPhase.Forward);
        Assert.Contains(copies, o => o.Phase == StepPhase.Backward);
        foreach (var op in copies)
        {
            // A download also pays its host-side add, which the share does not touch.
            double alone = plain.Duration(op, Model.HiddenSize).Seconds, transfer = op.Bytes.Value / (op.Resource == ResourceKind.H2d ? H200.HostLink!.H2d(true) : H200.HostLink!.D2h(true)).BytesPerSecond;
            double expected = Beside(op) ? alone + transfer * (op.Resource == ResourceKind.H2d ? 1 : 3) : alone;
            Assert.Equal(expected, contended.Duration(op, Model.HiddenSize).Seconds, 1e-8);
        }
    }

    [Fact]
    public void Given_the_measured_share_When_above_the_pinned_rate_Then_it_is_capped_at_one_and_without_a_figure_it_is_one()
    {
        var link = H200.HostLink!;
        Assert.Equal(1, link.H2dShareBesideCpuUpdate);
        Assert.Equal(1, (link with { H2dPinnedBesideCpuUpdateGbps = Figure.Measured(link.H2dPinnedGbps.Value * 1.2, "2026-12-06", "test") }).H2dShareBesideCpuUpdate);
        Assert.Equal(0.25, Contended().HostLink!.D2hShareBesideCpuUpdate, 1e-12);
    }
}
