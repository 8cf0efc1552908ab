using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// CPU updates beside the GPU's transfers: the update is priced at its calibrated rate where the profile states no
/// interference, and lengthened by the measured bytes it loses per copied byte where it does; the copies the schedule runs
/// beside it at their measured share.
/// </summary>
public class HostMemoryContentionTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Model = ModelCatalog.Default.Load("gpt2") with { NumLayers = 4 };

    /// <summary><paramref name="s"/>'s engine program on <paramref name="hw"/>, its costs, CPU Adam's rate for it (one process) and its CPU updates.</summary>
    private static (StepProgram Program, StepCosts Costs, double Rate, List<Operation> Updates) Priced(HardwareProfile hw, TrainingSettings s)
    {
        var program = StepScheduler.Build(Model, hw, s, false, ProgramShape.Engine);
        return (program, Simulator.Costs(program, hw, s), hw.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineUpdatePass(s)),
            program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep).ToList());
    }

    private static TrainingSettings Offloaded(StepSchedule schedule) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, Precision = Precision.Bf16,
        MicroBatch = 2, SeqLen = 256, ActivationCheckpointing = true, Schedule = schedule,
    };

    [Theory]
    [InlineData(StepSchedule.DeepSpeed)]
    [InlineData(StepSchedule.Overlapped)]
    [InlineData(StepSchedule.Delayed)]
    public void Given_a_schedule_When_priced_Then_each_cpu_update_takes_its_parameters_at_the_calibrated_rate_whatever_runs_beside_it(StepSchedule schedule)
    {
        var s = Offloaded(schedule);
        var (program, costs, rate, updates) = Priced(H200, s);
        bool transfersBeside = schedule != StepSchedule.DeepSpeed
            && program.Ops.Any(o => o.Resource is ResourceKind.H2d or ResourceKind.D2h && o.Phase == StepPhase.Backward);

        Assert.NotEmpty(updates);
        if (schedule != StepSchedule.DeepSpeed) Assert.True(transfersBeside, "the schedule runs transfers beside its updates");
        // Measured in-step, the update beside the copies ran at its rate alone (StepCosts.Duration's remarks).
        foreach (var update in updates)
            Assert.Equal(SimDuration.FromSeconds(update.Parameters / rate), costs.Duration(update, Model.HiddenSize));
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

    private static HardwareProfile Interfering(double bytesLost) => H200 with
    {
        HostLink = H200.HostLink! with { CpuUpdateBytesLostPerCopiedByte = Figure.Measured(bytesLost, "2026-12-06", "test") },
    };

    /// <summary><paramref name="profile"/> with CPU Adam <paramref name="factor"/> times as fast, both fp32 kernels.</summary>
    private static HardwareProfile AdamTimes(HardwareProfile profile, double factor)
    {
        Figure Scaled(Figure? rate) => Figure.Measured((rate ?? profile.Cpu.AdamParamsPerS).Value * factor, "2026-12-06", "test");
        return profile with { Cpu = profile.Cpu with { AdamParamsPerS = Scaled(profile.Cpu.AdamParamsPerS), AdamBf16ParamsPerS = Scaled(profile.Cpu.AdamBf16ParamsPerS) } };
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, 1)]
    [InlineData(StepSchedule.Overlapped, 1)]
    [InlineData(StepSchedule.Delayed, 1)]
    [InlineData(StepSchedule.Overlapped, 3)]
    [InlineData(StepSchedule.Delayed, 2)]
    public void Given_a_measured_interference_When_priced_Then_each_update_beside_copies_is_lengthened_by_its_share_of_their_bytes_and_the_deepspeed_schedule_is_not(StepSchedule schedule, int accumulation)
    {
        // CPU Adam a tenth as fast: the updates outlast every copy beside them, so all of the copies' bytes count.
        var s = Offloaded(schedule) with { GradAccumulation = accumulation };
        var slow = AdamTimes(Interfering(0.5), 0.1);
        var (program, costs, rate, updates) = Priced(slow, s);
        // Overlapped: the updates run as the last micro-batch's gradients land, beside that micro-batch's backward only.
        int last = accumulation - 1;
        bool Beside(Operation o) => schedule == StepSchedule.Delayed || (schedule == StepSchedule.Overlapped && o.Phase == StepPhase.Backward && o.MicroBatch == last);
        long copied = program.Ops.Where(o => o.Resource is ResourceKind.H2d or ResourceKind.D2h && Beside(o)).Sum(o => o.Bytes.Value);
        if (accumulation > 1 && schedule == StepSchedule.Overlapped)
            Assert.Contains(program.Ops, o => o.Resource == ResourceKind.D2h && o.Phase == StepPhase.Backward && o.MicroBatch < last);
        long updated = updates.Sum(o => o.Parameters);
        // And one byte per byte the gradient sums beside them move (the later micro-batches' adds).
        double added = program.Ops.Where(o => o.Resource == ResourceKind.HostSums && o.HostAdd.Adds && Beside(o))
            .Sum(o => o.HostAdd.HostBytes);
        if (accumulation > 1 && schedule != StepSchedule.DeepSpeed) Assert.True(added > 0);

        if (schedule != StepSchedule.DeepSpeed) Assert.True(copied > 0);
        foreach (var update in updates)
        {
            // Half a byte of the update's 28 B-per-parameter traffic lost per copied byte, shared by parameters.
            double extra = schedule == StepSchedule.DeepSpeed ? 0 : (0.5 * copied + added) / (rate * StepCosts.AdamHostBytesPerParameter) * update.Parameters / updated;
            Assert.Equal(update.Parameters / rate + extra, costs.Duration(update, Model.HiddenSize).Seconds, 1e-9);
        }
    }

    [Theory]
    [InlineData(StepSchedule.Overlapped)]
    [InlineData(StepSchedule.Delayed)]
    public void Given_updates_far_shorter_than_the_copies_beside_them_When_priced_Then_they_lose_at_most_what_the_copy_rate_takes_for_their_own_length(StepSchedule schedule)
    {
        // A CPU 200 times faster at Adam: its updates end long before the copies they run beside.
        var s = Offloaded(schedule);
        var fast = AdamTimes(Interfering(0.5), 200);
        var program = StepScheduler.Build(Model, fast, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, fast, s);
        var plain = Simulator.Costs(program, fast with { HostLink = H200.HostLink }, s);
        var updates = program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep).ToList();
        double alone = updates.Sum(o => plain.Duration(o, Model.HiddenSize).Seconds);
        double beside = updates.Sum(o => costs.Duration(o, Model.HiddenSize).Seconds);
        double rate = fast.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineUpdatePass(s));
        long copied = program.Ops.Where(o => o.Resource is ResourceKind.H2d or ResourceKind.D2h
            && (schedule == StepSchedule.Delayed || o.Phase == StepPhase.Backward)).Sum(o => o.Bytes.Value);
        double uncapped = 0.5 * copied / (rate * StepCosts.AdamHostBytesPerParameter);
        // Both directions at their full pinned rates for the whole update: the most copying an update can have beside it.
        double ceiling = 0.5 * (fast.HostLink!.H2d(true).BytesPerSecond + fast.HostLink.D2h(true).BytesPerSecond) * alone / (rate * StepCosts.AdamHostBytesPerParameter);

        Assert.True(beside > alone, "the copies still slow the update");
        Assert.True(beside - alone <= ceiling * (1 + 1e-9), $"lost {beside - alone:E3} s, at most {ceiling:E3} s");
        Assert.True(beside - alone < uncapped / 2, $"lost {beside - alone:E3} s where every copied byte would cost {uncapped:E3} s");
    }

    [Fact]
    public void Given_an_interference_of_zero_or_none_When_priced_Then_the_updates_cost_the_same()
    {
        var s = Offloaded(StepSchedule.Delayed);
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.Engine);
        var none = Simulator.Costs(program, H200, s);
        var zero = Simulator.Costs(program, Interfering(0), s);
        var one = Simulator.Costs(program, Interfering(1), s);
        var update = program.Ops.First(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep);

        Assert.Equal(none.Duration(update, Model.HiddenSize), zero.Duration(update, Model.HiddenSize));
        Assert.True(one.Duration(update, Model.HiddenSize) > none.Duration(update, Model.HiddenSize));
    }

    [Fact]
    public void Given_an_interference_out_of_range_When_the_profile_is_validated_Then_it_names_the_field()
    {
        var e = Assert.Throws<Descriptions.DescriptionException>(() => Interfering(-0.5).Validated("test.json"));
        Assert.Contains("cpu_update_bytes_lost_per_copied_byte", e.Message);
    }

    [Fact]
    public void Given_8_bit_state_When_an_interference_is_priced_Then_it_is_over_the_8_bit_update_s_own_traffic()
    {
        var s = Offloaded(StepSchedule.Delayed) with { OptimizerState = Optim.OptimizerStateFormat.EightBit };
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, Interfering(0.5), s);
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineUpdatePass(s));
        var updates = program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep).ToList();
        long copied = program.Ops.Where(o => o.Resource is ResourceKind.H2d or ResourceKind.D2h).Sum(o => o.Bytes.Value);
        long updated = updates.Sum(o => o.Parameters);

        foreach (var update in updates)
        {
            double extra = 0.5 * copied / (rate * StepCosts.EightBitAdamHostBytesPerParameter) * update.Parameters / updated;
            Assert.Equal(update.Parameters / rate + extra, costs.Duration(update, Model.HiddenSize).Seconds, 1e-9);
        }
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, 3)]
    [InlineData(StepSchedule.Overlapped, 1)]
    [InlineData(StepSchedule.Overlapped, 3)]
    [InlineData(StepSchedule.Delayed, 2)]
    public void Given_gradient_sums_beside_the_cpu_updates_When_priced_Then_each_update_loses_a_byte_of_its_traffic_per_byte_they_add_and_no_interference_figure_is_needed(StepSchedule schedule, int accumulation)
    {
        // No interference measured: only the adds lengthen the updates. CPU Adam a tenth as fast, so they all fall inside.
        var s = Offloaded(schedule) with { GradAccumulation = accumulation };
        var slow = AdamTimes(H200, 0.1);
        var (program, costs, rate, updates) = Priced(slow, s);
        var adds = program.Ops.Where(o => o.Resource == ResourceKind.HostSums && o.HostAdd.Adds).ToList();
        // The overlapped schedule updates as the last micro-batch's gradients land: its adds only; the delayed one beside the whole next step.
        double added = schedule switch
        {
            StepSchedule.DeepSpeed => 0,
            StepSchedule.Overlapped => adds.Where(o => o.MicroBatch == accumulation - 1).Sum(o => o.HostAdd.HostBytes),
            _ => adds.Sum(o => o.HostAdd.HostBytes),
        };
        long updated = updates.Sum(o => o.Parameters);

        Assert.Equal(accumulation > 1, adds.Count > 0);
        if (schedule == StepSchedule.Overlapped && accumulation > 1)
            Assert.Contains(adds, o => o.MicroBatch < accumulation - 1); // earlier micro-batches' adds exist and are left out
        foreach (var update in updates)
        {
            double extra = added / (rate * StepCosts.AdamHostBytesPerParameter) * update.Parameters / updated;
            Assert.Equal(update.Parameters / rate + extra, costs.Duration(update, Model.HiddenSize).Seconds, 1e-9);
        }
    }

    [Fact]
    public void Given_the_delayed_schedule_s_first_step_When_priced_Then_its_updates_run_after_its_passes_and_nothing_lengthens_them()
    {
        // The warm-up step has nothing pending: its update waits for every add and the last backward.
        var s = Offloaded(StepSchedule.Delayed) with { GradAccumulation = 3 };
        var slow = AdamTimes(Interfering(0.5), 0.1);
        var first = StepScheduler.Build(Model, slow, s, true, ProgramShape.Engine);
        var steady = StepScheduler.Build(Model, slow, s, false, ProgramShape.Engine);
        double rate = slow.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineUpdatePass(s));
        var firstCosts = Simulator.Costs(first, slow, s);
        var steadyCosts = Simulator.Costs(steady, slow, s);

        Assert.Contains(first.Ops, o => o.Resource == ResourceKind.HostSums && o.HostAdd.Adds);
        foreach (var update in first.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep))
            Assert.Equal(update.Parameters / rate, firstCosts.Duration(update, Model.HiddenSize).Seconds, 8); // whole nanoseconds
        var pending = steady.Ops.First(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep);
        Assert.True(steadyCosts.Duration(pending, Model.HiddenSize).Seconds > pending.Parameters / rate * 1.001, "the steady step's pending update runs beside the next step");
    }

    [Theory]
    [InlineData(StepSchedule.Overlapped)]
    [InlineData(StepSchedule.Delayed)]
    public void Given_updates_far_shorter_than_the_adds_beside_them_When_priced_Then_they_lose_at_most_what_the_add_rate_takes_for_their_own_length(StepSchedule schedule)
    {
        // No interference figure (only the adds count); a CPU 200 times faster at Adam: its updates end long before the adds.
        var s = Offloaded(schedule) with { GradAccumulation = 3 };
        var fast = AdamTimes(H200, 200);
        var (program, costs, rate, updates) = Priced(fast, s);
        double alone = updates.Sum(o => o.Parameters / rate);
        double beside = updates.Sum(o => costs.Duration(o, Model.HiddenSize).Seconds);
        var adds = program.Ops.Where(o => o.Resource == ResourceKind.HostSums && o.HostAdd.Adds
            && (schedule == StepSchedule.Delayed || o.MicroBatch == 2)).ToList();
        double added = adds.Sum(o => o.HostAdd.HostBytes);
        double addSeconds = adds.Sum(o => costs.Duration(o, Model.HiddenSize).Seconds);
        double uncapped = added / (rate * StepCosts.AdamHostBytesPerParameter);
        // The adds at their own rate for the whole of the updates: the most adding an update can have beside it.
        double ceiling = added / addSeconds * alone / (rate * StepCosts.AdamHostBytesPerParameter);

        // Each duration is whole nanoseconds: up to one per update of rounding.
        double rounding = updates.Count * 1e-9;
        Assert.True(beside > alone + rounding, "the adds still slow the updates");
        Assert.True(beside - alone <= ceiling + rounding, $"lost {beside - alone:E3} s, at most {ceiling:E3} s");
        Assert.True(beside - alone < uncapped / 2, $"lost {beside - alone:E3} s where every added byte would cost {uncapped:E3} s");
    }

    [Fact]
    public void Given_several_ranks_When_their_downloads_add_beside_the_updates_Then_the_updates_are_lengthened_by_those_adds()
    {
        // Several ranks have no host-sums thread: each later micro-batch's download does its add.
        var node = AdamTimes(ProfileCatalog.Default.Load("h100-node"), 0.1);
        var s = Offloaded(StepSchedule.Delayed) with { GradAccumulation = 2, GpusPerNode = 2 };
        var program = StepScheduler.Build(Model, node, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, node, s);
        double rate = node.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineUpdatePass(s)) / program.GpusPerNode;
        var updates = program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep).ToList();

        Assert.DoesNotContain(program.Ops, o => o.Resource == ResourceKind.HostSums);
        Assert.Contains(program.Ops, o => o.Resource == ResourceKind.D2h && o.HostAdd.Adds);
        Assert.All(updates, u => Assert.True(costs.Duration(u, Model.HiddenSize).Seconds > u.Parameters / rate * 1.001, $"{u} is not lengthened"));
    }

    [Theory]
    [InlineData(StepSchedule.Overlapped)]
    [InlineData(StepSchedule.Delayed)]
    public void Given_updates_lengthened_beside_copies_and_adds_When_the_tuner_asks_for_the_cpu_s_work_Then_it_gets_the_updates_alone(StepSchedule schedule)
    {
        // The window those terms spread over moves with pinning and AIO settings; the tuner's bound must hold at every knob.
        var s = Offloaded(schedule) with { GradAccumulation = 3 };
        var hw = AdamTimes(Interfering(0.5), 0.1);
        var program = StepScheduler.Build(Model, hw, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, hw, s);
        double rate = hw.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineUpdatePass(s));

        foreach (var update in program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep))
        {
            Assert.True(costs.Duration(update, Model.HiddenSize).Seconds > update.Parameters / rate * 1.01);
            Assert.Equal(update.Parameters / rate, costs.WorkAlone(update, Model.HiddenSize).Seconds, 8);
        }
    }

    [Fact]
    public void Given_the_delayed_schedule_on_a_profile_with_floors_beside_the_update_When_the_tuner_asks_for_the_work_alone_Then_it_never_exceeds_the_priced_time_and_leaves_out_what_the_knobs_move()
    {
        // The H100 VM's profile measures the passes' floors beside the update (ratios above 1) and the interference.
        var vm = ProfileCatalog.Default.Load("h100-1x-vm");
        Assert.NotNull(vm.Gpu!.EngineKernels!.BesideUpdateFloorRatios);
        var s = Offloaded(StepSchedule.Delayed) with { GradAccumulation = 2 };
        var program = StepScheduler.Build(Model, vm, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, vm, s);
        var passes = program.Ops.Where(o => o.Resource == ResourceKind.Compute && o.Kind != OpKind.OptimizerStep).ToList();
        var writeBack = Assert.Single(program.Ops, o => o.Kind == OpKind.MasterWriteBack);

        Assert.All(passes, o => Assert.True(costs.WorkAlone(o, Model.HiddenSize) <= costs.Duration(o, Model.HiddenSize), $"{o}"));
        // Launch-bound passes beside the pending update pay the larger floors; alone they do not.
        Assert.True(passes.Sum(o => costs.WorkAlone(o, Model.HiddenSize).Seconds) < passes.Sum(o => costs.Duration(o, Model.HiddenSize).Seconds));
        // The write-back: its host pass alone, without the uploads and NVMe traffic in series with it.
        Assert.Equal(writeBack.Bytes.Value / (vm.Cpu.MemoryBandwidth.BytesPerSecond / program.GpusPerNode), costs.WorkAlone(writeBack, Model.HiddenSize).Seconds, 8);
        Assert.True(costs.WorkAlone(writeBack, Model.HiddenSize) <= costs.Duration(writeBack, Model.HiddenSize));
    }
}
