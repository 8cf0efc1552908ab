using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Tuning;

namespace AiOs.Planner.Core.Tests;

/// <summary>The tuner's structure search against an exhaustive search of its own, written independently.</summary>
public class TunerSearchTests
{
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    /// <summary>
    /// Every stage × parameter tier × optimizer tier × checkpointing × schedule × micro-batch × accumulation, with
    /// DeepSpeed's default knobs, that the planner says fits with the headroom kept: the fastest, overall and among
    /// DeepSpeed-runnable settings.
    /// </summary>
    private static (double Best, double DeepSpeedBest) Exhaustive(ModelSpec model, HardwareProfile hw, TrainingSettings fixedSettings,
        int maxMicro, int maxAccumulation, double headroom)
    {
        double best = 0, deepSpeed = 0;
        foreach (var stage in Enum.GetValues<ZeroStage>())
            foreach (var param in Enum.GetValues<OffloadTier>())
                foreach (var optimizer in Enum.GetValues<OffloadTier>())
                    foreach (bool checkpointing in new[] { false, true })
                        // The tuner never proposes the delayed schedule (it changes the math: one step stale), so the exhaustive best leaves it out too.
                        foreach (var schedule in Enum.GetValues<StepSchedule>().Where(x => x != StepSchedule.Delayed))
                            for (int micro = 1; micro <= maxMicro; micro *= 2)
                                for (int accumulation = 1; accumulation <= maxAccumulation; accumulation *= 2)
                                {
                                    var s = fixedSettings with
                                    {
                                        ZeroStage = stage, ParamOffload = param, OptimizerOffload = optimizer, ActivationCheckpointing = checkpointing,
                                        Schedule = schedule, MicroBatch = micro, GradAccumulation = accumulation,
                                        BufferSize = Math.Max(fixedSettings.BufferSize, model.LargestTensorElements()),
                                    };
                                    var plan = TrainingPlanner.Plan(model, hw, s, new PlanOptions { Simulate = false });
                                    if (!plan.Feasible || !KeepsHeadroom(plan, hw, headroom)) continue;
                                    double tokens = Simulator.PredictTime(model, hw, s).TokensPerSecond;
                                    best = Math.Max(best, tokens);
                                    if (schedule == StepSchedule.DeepSpeed) deepSpeed = Math.Max(deepSpeed, tokens);
                                }
        return (best, deepSpeed);
    }

    private static bool KeepsHeadroom(PlanResult plan, HardwareProfile hw, double headroom)
    {
        double keep = 1 - headroom;
        var m = plan.Memory;
        return (!hw.HasGpu || m.Gpu.Peak.Value <= hw.Gpu!.Memory.Value * keep)
               && m.CpuPeak.Value <= hw.Cpu.Ram.Value * keep
               && m.CpuPinned.Peak.Value <= hw.Cpu.Ram.Value * TrainingPlanner.PinnedRamLimit * keep
               && (m.Nvme.Peak.Value == 0 || m.Nvme.Peak.Value <= m.Nvme.Capacity.Value * keep);
    }

    public static TheoryData<string, string, int> SmallSpaces() => new()
    {
        { "gpt2", "h200-1x", 1 },
        { "gpt2-medium", "h200-1x", 1 },
        { "gpt2-large", "rtx4090-64gb-pcie4", 1 },
        { "gpt2-xl", "rtx4090-64gb-pcie4", 1 },
        { "gpt2", "dgx-a100", 2 },
        { "gpt2", "ci-2core-24gb", 0 },
        { "llama-2-7b", "consumer-2x11gb-64gb-pcie4", 2 },
    };

    [Theory]
    [MemberData(nameof(SmallSpaces))]
    public void Given_a_small_space_When_tuned_Then_the_best_is_at_least_the_exhaustive_best(string modelName, string hardwareName, int gpus)
    {
        var model = ModelCatalog.Default.Load(modelName);
        var hw = ProfileCatalog.Default.Load(hardwareName);
        // 0 GPUs: a CPU-only profile, where --gpus must stay unset.
        // Several GPUs per process group is DeepSpeed's; the aios engine runs one GPU.
        var fixedSettings = new TrainingSettings { Executor = gpus > 1 ? ExecutorKind.DeepSpeed : ExecutorKind.Aios, NvmePath = "/nvme", SeqLen = 512, GpusPerNode = gpus > 0 ? gpus : null };
        var result = Tuner.Tune(new TuneRequest { Model = model, Hardware = hw, Base = fixedSettings, MaxMicroBatch = 4, MaxGradAccumulation = 2, Budget = 3000 });

        var (best, deepSpeed) = Exhaustive(model, hw, fixedSettings, maxMicro: 4, maxAccumulation: 2, TuneRequest.DefaultMemoryHeadroom);

        Assert.True(best > 0, "the exhaustive search found nothing that fits: pick a space where something does");
        Assert.True(result.Best!.TokensPerSecond >= best * (1 - 1e-9), $"tuner {result.Best.TokensPerSecond:N1} ({Tuner.Describe(result.Best.Settings)}) < exhaustive {best:N1} tokens/s");
        Assert.True(result.DeepSpeedBest!.TokensPerSecond >= deepSpeed * (1 - 1e-9), $"tuner's DeepSpeed best {result.DeepSpeedBest.TokensPerSecond:N1} < exhaustive {deepSpeed:N1} tokens/s");
    }

    [Fact]
    public void Given_gpt2_xl_on_one_h200_When_tuned_Then_it_beats_zero1_at_micro_batch_16_that_plan_rates()
    {
        var zero1 = TrainingPlanner.Plan(Gpt2Xl, H200, new TrainingSettings { ZeroStage = ZeroStage.Zero1, MicroBatch = 16 });
        Assert.True(zero1.Feasible);

        var best = Tuner.Tune(new TuneRequest { Model = Gpt2Xl, Hardware = H200, Budget = 2000 }).Best!;

        Assert.True(best.TokensPerSecond >= zero1.Step!.TokensPerSecond, $"tuner {best.TokensPerSecond:N0} < plan zero1 {zero1.Step.TokensPerSecond:N0} tokens/s");
    }

    [Fact]
    public void Given_one_gpu_When_the_tuner_lists_placements_Then_every_stage_the_planner_accepts_is_there()
    {
        var b = new TrainingSettings { NvmePath = "/nvme" };
        var placements = Tuner.Placements(b, Gpt2Xl, H200);

        foreach (var stage in Enum.GetValues<ZeroStage>())
            foreach (var param in Enum.GetValues<OffloadTier>())
                foreach (var optimizer in Enum.GetValues<OffloadTier>())
                {
                    var s = b with { ZeroStage = stage, ParamOffload = param, OptimizerOffload = optimizer };
                    if (SettingsRules.Check(s, Gpt2Xl, H200).Any(p => p.Flag is "--zero-stage" or "--nvme-offload-gradients")) continue;
                    // The engine (aios executor, the default) has no optimizer on the GPU beside offloaded parameters.
                    bool engineHasIt = !(param != OffloadTier.None && optimizer == OffloadTier.None);
                    Assert.Equal(engineHasIt, placements.Any(p => p.Params == param && p.Optimizer == optimizer));
                    if (!engineHasIt) continue;
                    // ZeRO-3 and Infinity are one DeepSpeed stage: either spelling counts.
                    Assert.Contains(placements, p => p.Params == param && p.Optimizer == optimizer &&
                        (p.Stage == stage || (s.PartitionsParameters && p.Stage is ZeroStage.Zero3 or ZeroStage.Infinity)));
                }
        Assert.Contains(placements, p => p is (ZeroStage.Zero1, OffloadTier.None, OffloadTier.None));
        // DeepSpeed keeps the optimizer partition on the GPU with offloaded parameters: its executor still lists that placement.
        Assert.Contains(Tuner.Placements(b with { Executor = ExecutorKind.DeepSpeed }, Gpt2Xl, H200), p => p.Params == OffloadTier.Cpu && p.Optimizer == OffloadTier.None);
    }

    [Fact]
    public void Given_offloaded_parameters_and_no_optimizer_offload_When_resolved_for_the_engine_Then_the_optimizer_is_in_cpu_ram_and_a_note_says_so()
    {
        var resolved = SettingsRules.ResolveWithNotes(new TrainingSettings { ParamOffload = OffloadTier.Cpu }, stageGiven: false);

        Assert.Equal(OffloadTier.Cpu, resolved.Settings.OptimizerOffload);
        Assert.Equal(ZeroStage.Infinity, resolved.Settings.ZeroStage);
        Assert.Contains(resolved.Notes, n => n.Contains("optimizer in CPU RAM", StringComparison.Ordinal));
        Assert.Equal(OffloadTier.None, SettingsRules.Resolve(new TrainingSettings { ParamOffload = OffloadTier.Cpu, Executor = ExecutorKind.DeepSpeed }, stageGiven: false).OptimizerOffload);
    }

    [Fact]
    public void Given_the_same_request_When_pruned_search_runs_twice_Then_it_evaluates_the_same_candidates()
    {
        var request = new TuneRequest { Model = Gpt2Xl, Hardware = H200, Base = new TrainingSettings { NvmePath = "/nvme" }, Budget = 1500 };
        var a = Tuner.Tune(request);
        var b = Tuner.Tune(request);
        Assert.Equal(a.Evaluated, b.Evaluated);
        Assert.Equal(a.Best!.Settings, b.Best!.Settings);
        Assert.Equal(a.DeepSpeedBest!.Settings, b.DeepSpeedBest!.Settings);
    }
}
