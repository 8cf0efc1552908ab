using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The profile's <c>optimizer_call_overhead_s</c> (issue 13): every CPU update call (one OptimizerStep per sub-group) costs
/// it on top of its parameters over the rate, so a step's CPU optimizer time grows by it times the number of calls; a
/// profile without it prices as before.
/// </summary>
public class OptimizerCallCostTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };
    private const double CallSeconds = 1.2e-3;
    private const long CallNs = 1_200_000;
    private static readonly HardwareProfile WithCallCost = H200 with { Cpu = H200.Cpu with { OptimizerCallOverheadS = new Figure(CallSeconds) } };

    private static TrainingSettings Offloaded(long subGroupSize, StepSchedule schedule = StepSchedule.DeepSpeed) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, Precision = Precision.Bf16,
        MicroBatch = 1, SeqLen = 16, SubGroupSize = subGroupSize, Schedule = schedule,
    };

    /// <summary>The CPU update operations of the engine's program and their priced durations.</summary>
    private static List<(Operation Op, SimDuration Time)> Updates(HardwareProfile hw, TrainingSettings s)
    {
        var program = StepScheduler.Build(Tiny, hw, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, hw, s);
        return program.Ops.Where(o => o.Kind == OpKind.OptimizerStep && o.Resource == ResourceKind.Cpu)
            .Select(o => (o, costs.Duration(o, Tiny.HiddenSize))).ToList();
    }

    [Theory]
    [InlineData(1000, StepSchedule.DeepSpeed)]
    [InlineData(1_000_000_000, StepSchedule.DeepSpeed)]
    [InlineData(1000, StepSchedule.Overlapped)]
    public void Given_a_per_call_cost_When_priced_Then_every_update_call_costs_exactly_that_much_more(long subGroupSize, StepSchedule schedule)
    {
        var s = Offloaded(subGroupSize, schedule);
        var without = Updates(H200, s);
        var with = Updates(WithCallCost, s);

        Assert.NotEmpty(with);
        Assert.Equal(without.Select(u => u.Op.Id), with.Select(u => u.Op.Id));
        // Each duration is rounded up to whole nanoseconds once, so the sum may round one nanosecond apart from its parts.
        for (int i = 0; i < with.Count; i++)
            Assert.InRange((with[i].Time - without[i].Time).Nanoseconds, CallNs - 1, CallNs + 1);
    }

    [Fact]
    public void Given_the_deepspeed_schedule_When_the_updates_run_after_backward_Then_the_step_grows_by_the_cost_times_the_calls()
    {
        // Small sub-groups: many calls per unit, all on the CPU after backward, one after another on the critical path.
        var s = Offloaded(1000);
        int calls = Updates(H200, s).Count;
        Assert.True(calls > 3 * 2, $"{calls} calls: expected several sub-groups per unit");

        var before = Simulator.Predict(Tiny, H200, s);
        var after = Simulator.Predict(Tiny, WithCallCost, s);

        Assert.InRange((after.Time - before.Time).Nanoseconds, CallNs * calls - calls, CallNs * calls + calls);
        Assert.InRange((after.Phases.Optimizer - before.Phases.Optimizer).Nanoseconds, CallNs * calls - calls, CallNs * calls + calls);
    }

    [Fact]
    public void Given_more_sub_groups_When_priced_Then_the_added_time_counts_the_calls_not_the_parameters()
    {
        double Added(long subGroupSize)
        {
            var s = Offloaded(subGroupSize);
            return (Updates(WithCallCost, s).Sum(u => u.Time.Seconds) - Updates(H200, s).Sum(u => u.Time.Seconds)) / CallSeconds;
        }

        var fine = Offloaded(1000);
        Assert.Equal(Updates(H200, fine).Count, Added(1000), 2);
        Assert.Equal(Updates(H200, Offloaded(1_000_000_000)).Count, Added(1_000_000_000), 2);
        Assert.True(Added(1000) > Added(1_000_000_000));
    }

    [Fact]
    public void Given_a_profile_without_the_field_When_loaded_Then_the_call_costs_the_documented_default_of_nothing()
    {
        const string json = """
            {"name": "x", "cpu": {"cores": 4, "ram_gib": 16, "memory_bandwidth_gbps": 20, "adam_params_per_s": 1.5e9}}
            """;
        var profile = ProfileCatalog.Parse(json, "x.json");
        Assert.Null(profile.Cpu.OptimizerCallOverheadS);
        Assert.Equal(CpuSpec.DefaultOptimizerCallOverheadS, profile.Cpu.OptimizerCallOverhead);
        Assert.Equal(0, CpuSpec.DefaultOptimizerCallOverheadS);
    }

    [Fact]
    public void Given_a_measured_figure_When_written_and_loaded_Then_it_survives_under_its_json_name()
    {
        var measured = H200 with { Cpu = H200.Cpu with { OptimizerCallOverheadS = Figure.Measured(3.5e-5, "2026-12-05", "fit") } };
        string path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "call.json");
        DescriptionJson.WriteFileAtomic(path, measured);

        Assert.Contains("\"optimizer_call_overhead_s\"", File.ReadAllText(path));
        var copy = ProfileCatalog.LoadFile(path);
        Assert.Equal(3.5e-5, copy.Cpu.OptimizerCallOverhead);
        Assert.Equal("fit", copy.Cpu.OptimizerCallOverheadS!.Provenance!.Method);
    }

    [Fact]
    public void Given_a_negative_figure_When_loaded_Then_the_error_names_the_field()
    {
        const string json = """
            {"name": "x", "cpu": {"cores": 4, "ram_gib": 16, "memory_bandwidth_gbps": 20, "adam_params_per_s": 1e9, "optimizer_call_overhead_s": -1e-3}}
            """;
        var e = Assert.Throws<DescriptionException>(() => ProfileCatalog.Parse(json, "x.json"));
        Assert.Contains("optimizer_call_overhead_s", e.Message);
    }
}
