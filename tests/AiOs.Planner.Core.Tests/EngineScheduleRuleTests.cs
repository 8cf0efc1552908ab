using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The schedules the engine refuses are refused by the plan and never picked by the tuner (found by a CLI sweep on 2026-12-08:
/// `tune --precision fp16` picked the overlapped schedule, and `plan` called fp16 overlapped, delayed on 8 GPUs and delayed with
/// gradients on NVMe feasible, all of which `aios train` refuses).
/// </summary>
public class EngineScheduleRuleTests
{
    private static readonly HardwareProfile H100 = ProfileCatalog.Default.Load("h100-1x-vm");
    private static readonly HardwareProfile Dgx = ProfileCatalog.Default.Load("dgx-a100");
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");

    private static TrainingSettings InRam(StepSchedule schedule, Precision precision = Precision.Bf16) => new()
    {
        ZeroStage = ZeroStage.Zero2, OptimizerOffload = OffloadTier.Cpu, Schedule = schedule, Precision = precision,
    };

    public static TheoryData<string, TrainingSettings, string> Refused() => new()
    {
        { "h100", InRam(StepSchedule.Overlapped, Precision.Fp16), "fp16 loss scaling" },
        { "dgx", InRam(StepSchedule.Delayed), "8 GPUs" },
        { "h100", InRam(StepSchedule.Delayed) with { ZeroStage = ZeroStage.Infinity, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme" }, "--offload-gradients cpu" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Given_a_schedule_the_engine_refuses_When_planned_for_the_aios_executor_Then_the_plan_names_it_under_schedule(string machine, TrainingSettings s, string says)
    {
        var hw = machine == "dgx" ? Dgx : H100;

        var problems = SettingsRules.Check(s, Gpt2, hw);
        var deepSpeed = SettingsRules.Check(s with { Executor = ExecutorKind.DeepSpeed }, Gpt2, hw);

        var schedule = Assert.Single(problems, p => p.Flag == "--schedule");
        Assert.Contains(says, schedule.Message);
        Assert.DoesNotContain(deepSpeed, p => p.Flag == "--schedule");
    }

    [Fact]
    public void Given_fp16_When_tuned_for_the_engine_Then_no_reported_candidate_takes_the_overlapped_schedule()
    {
        var result = Tuner.Tune(new TuneRequest
        {
            Model = ModelCatalog.Default.Load("llama-2-7b"), Hardware = H100, Budget = 600, Base = new TrainingSettings { NvmePath = "/nvme", Precision = Precision.Fp16 },
        });

        var reported = new[] { result.Best, result.DeepSpeedBest }.OfType<Candidate>().Concat(result.Alternatives).Concat(result.ParetoFront).ToList();
        Assert.NotEmpty(reported);
        Assert.All(reported, c => Assert.NotEqual(StepSchedule.Overlapped, c.Settings.Schedule));
        Assert.All(reported, c => Assert.Empty(EngineScheduleRule.Problems(c.Settings, 1)));
    }
}
