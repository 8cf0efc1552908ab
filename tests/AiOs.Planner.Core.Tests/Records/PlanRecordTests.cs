using AiOs.Planner.Descriptions;
using AiOs.Planner.Hardware;
using AiOs.Planner.Learning;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Records;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests.Records;

/// <summary>The typed plan document writes exactly what the hand-built one did, and reads back typed.</summary>
public sealed class PlanRecordTests
{
    public static TheoryData<string, string, string> Plans() => new()
    {
        { "gpt2", "rtx4090-64gb-pcie4", "nvme" },
        { "gpt2-xl", "h200-1x", "resident" },
        { "llama-2-70b", "rtx4090-64gb-pcie4", "infeasible" },
        { "tiny-gpt", "ci-2core-24gb", "memory-only" },
        { "gpt2", "ci-2core-24gb", "corrected" },
        { "gpt2-xl", "h200-1x", "gpu-limited" },
    };

    private static PlanResult Plan(string model, string hardware, string kind)
    {
        var settings = kind switch
        {
            "nvme" => new TrainingSettings { ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme", MicroBatch = 2 },
            "resident" => new TrainingSettings { MicroBatch = 8, Precision = Precision.Bf16 },
            "infeasible" => new TrainingSettings { ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None },
            _ => new TrainingSettings { SeqLen = 64, MicroBatch = 2 },
        };
        var limit = kind == "gpu-limited" ? Units.Bytes.FromGiB(11) : (Units.Bytes?)null;
        var hw = GpuMemoryLimit.Apply(ProfileCatalog.Default.Load(hardware), limit);
        var plan = TrainingPlanner.Plan(ModelCatalog.Default.Load(model), hw, SettingsRules.Resolve(settings, hw.HasGpu),
            new PlanOptions { Simulate = kind != "memory-only", FirstStep = kind == "resident" }) with { GpuMemoryLimit = limit };
        // A correction's outcome as the planner attaches it (the learned model itself lives in Calibration).
        return kind == "corrected"
            ? plan with { Correction = new CorrectionOutcome { Applied = false, Reason = "outside the history: x", Ratios = PhaseRatios.One, Uncorrected = new PhaseSeconds(0.1, 0.2, 0.03) } }
            : plan;
    }

    [Theory]
    [MemberData(nameof(Plans))]
    public void Given_a_plan_When_written_as_the_typed_record_Then_the_json_is_the_hand_built_documents_field_for_field(string model, string hardware, string kind)
    {
        var plan = Plan(model, hardware, kind);

        string typed = PlanDocument.Build(plan).ToJsonString();

        Assert.Equal(LegacyPlanDocument.Build(plan).ToJsonString(), typed);
    }

    [Theory]
    [MemberData(nameof(Plans))]
    public void Given_a_written_plan_When_read_back_Then_the_typed_fields_hold_the_plans_values(string model, string hardware, string kind)
    {
        var plan = Plan(model, hardware, kind);
        string path = Path.Combine(Directory.CreateTempSubdirectory("aios-plan-").FullName, "prediction.json");
        AtomicFile.WriteAllText(path, DeepSpeed.DeepSpeedConfig.ToJson(PlanDocument.Build(plan)));

        var read = RecordedRun.ReadPlan(path)!;

        Assert.Equal(plan.Settings, read.Settings);
        Assert.Equal(plan.Model.TotalParameters, read.Model.Params);
        Assert.Equal(plan.Memory.CpuPinned.Peak.Value, read.Memory.CpuPinnedBytes);
        Assert.Equal(plan.Feasible, read.Feasible);
        Assert.Equal(plan.Step?.Phases.Backward.Seconds, read.Step?.Phases.BackwardS);
        Assert.Equal(plan.Correction?.Uncorrected.Forward, read.Step?.Correction?.Uncorrected.Phases.ForwardS);
        if (read.Step is { } step) Assert.Equal(plan.Correction?.Uncorrected.Optimizer ?? plan.Step!.Phases.Optimizer.Seconds, step.SimulatorPhases.OptimizerS);
    }
}
