using AiOs.Planner.DeepSpeed;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;
using AiOs.Planner.Units;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// Mixed placement of the optimizer state (--optimizer-ram-budget): the one rule, and the planner, tuner, validator
/// and ds-config that follow it.
/// </summary>
public class OptimizerPlacementTests
{
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x");

    private static readonly TrainingSettings NvmeOptimizer = new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme",
        SubGroupSize = 100_000_000, MicroBatch = 4, SeqLen = 1024,
    };

    private static Bytes WholeState(ModelSpec m, TrainingSettings s) => Bytes.OfElements(m.TotalParameters, 12);

    [Fact]
    public void Given_budget_zero_When_split_Then_every_sub_group_is_on_nvme()
    {
        Assert.All(OptimizerPlacement.InRam([10, 20, 30], 12, Bytes.Zero), Assert.False);
        Assert.All(OptimizerPlacement.InRam([10, 20, 30], 12, NvmeOptimizer), Assert.False);
    }

    [Fact]
    public void Given_a_budget_at_least_the_whole_state_When_split_Then_every_sub_group_is_in_ram()
    {
        Assert.All(OptimizerPlacement.InRam([10, 20, 30], 12, new Bytes(60 * 12)), Assert.True);
        Assert.All(OptimizerPlacement.InRam([10, 20, 30], 12, Bytes.FromGiB(1)), Assert.True);
    }

    [Fact]
    public void Given_a_budget_between_When_split_Then_the_sub_groups_updated_last_stay_in_ram()
    {
        // 30 and 20 fit in 50 × 12 bytes; 10 would not fit after them, and a suffix never skips one.
        Assert.Equal([false, true, true], OptimizerPlacement.InRam([10, 20, 30], 12, new Bytes(55 * 12)));
        Assert.Equal([false, false, false], OptimizerPlacement.InRam([10, 20, 30], 12, new Bytes(29 * 12)));
    }

    [Fact]
    public void Given_the_optimizer_not_on_nvme_When_split_Then_nothing_is_kept_by_the_rule()
    {
        var cpu = NvmeOptimizer with { OptimizerOffload = OffloadTier.Cpu, OptimizerRamBudget = Bytes.FromGiB(1) };
        Assert.All(OptimizerPlacement.InRam([10, 20], 12, cpu), Assert.False);
    }

    [Fact]
    public void Given_random_sub_groups_When_the_budget_grows_Then_ram_only_gains_sub_groups_and_stays_within_the_budget()
    {
        var gen =
            from sizes in Gen.ListOf(Gen.Choose(1, 1000).Select(i => (long)i)).Where(l => l.Count > 0)
            from a in Gen.Choose(0, 20_000)
            from b in Gen.Choose(0, 20_000)
            select (sizes.ToArray(), Math.Min(a, b), Math.Max(a, b));
        Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var (sizes, small, large) = t;
            bool[] less = OptimizerPlacement.InRam(sizes, 12, new Bytes(small * 12L));
            bool[] more = OptimizerPlacement.InRam(sizes, 12, new Bytes(large * 12L));
            for (int i = 0; i < sizes.Length; i++) Assert.True(!less[i] || more[i]);
            Assert.True(OptimizerPlacement.Split(sizes, more).Ram <= large);
            Assert.True(OptimizerPlacement.Split(sizes, less).Ram <= OptimizerPlacement.Split(sizes, more).Ram);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200));
    }

    [Fact]
    public void Given_growing_budgets_When_planned_Then_ram_grows_and_nvme_space_and_step_traffic_shrink()
    {
        var budgets = new[] { Bytes.Zero, Bytes.FromGiB(5), Bytes.FromGiB(10), WholeState(Gpt2Xl, NvmeOptimizer) };
        var plans = budgets.Select(b => TrainingPlanner.Plan(Gpt2Xl, H200, NvmeOptimizer with { OptimizerRamBudget = b })).ToList();

        Assert.All(plans, p => Assert.Empty(p.SettingsProblems));
        for (int i = 1; i < plans.Count; i++)
        {
            Assert.True(plans[i].Memory.CpuPeak > plans[i - 1].Memory.CpuPeak, $"host RAM at budget {budgets[i]}");
            Assert.True(plans[i].Memory.Nvme.Peak < plans[i - 1].Memory.Nvme.Peak, $"NVMe space at budget {budgets[i]}");
            var (before, after) = (plans[i - 1].Step!.Traffic, plans[i].Step!.Traffic);
            Assert.True(after.NvmeRead + after.NvmeWrite < before.NvmeRead + before.NvmeWrite, $"NVMe bytes per step at budget {budgets[i]}");
        }
        // The whole state in RAM: no optimizer state on NVMe at all (the gradients, which follow the optimizer, stay there).
        Assert.Equal(Bytes.Zero, plans[^1].Memory.Nvme.Of("optimizer states"));
        Assert.Equal(Bytes.OfElements(Gpt2Xl.TotalParameters, 12), plans[^1].Memory.CpuPageable.Of("optimizer states") + plans[^1].Memory.CpuPinned.Of("optimizer states"));
    }

    [Theory]
    [InlineData(OffloadTier.Cpu)]
    [InlineData(OffloadTier.None)]
    public void Given_a_budget_with_the_optimizer_not_on_nvme_When_validated_Then_the_flag_and_the_fix_are_named(OffloadTier optimizer)
    {
        var s = NvmeOptimizer with { OptimizerOffload = optimizer, OptimizerRamBudget = Bytes.FromGiB(60) };

        var problem = Assert.Single(SettingsValidator.Problems(s), p => p.Flag == "--optimizer-ram-budget");

        Assert.Contains("--offload-optimizer nvme", problem.Message);
        Assert.Equal("$.optimizer_ram_budget", problem.Field);
    }

    [Fact]
    public void Given_a_negative_budget_When_validated_Then_it_is_refused_naming_the_flag()
    {
        var problem = Assert.Single(SettingsValidator.FieldProblems(NvmeOptimizer with { OptimizerRamBudget = new Bytes(-1) }));
        Assert.Equal("--optimizer-ram-budget", problem.Flag);
    }

    [Fact]
    public void Given_the_deepspeed_executor_When_checked_Then_a_budget_is_refused_because_deepspeed_cannot_split()
    {
        var s = NvmeOptimizer with { OptimizerRamBudget = Bytes.FromGiB(10), Executor = ExecutorKind.DeepSpeed };
        Assert.Contains(SettingsRules.Check(s, Gpt2Xl, H200), p => p.Flag == "--optimizer-ram-budget");
    }

    [Fact]
    public void Given_a_budget_that_spills_When_converted_for_deepspeed_Then_all_nvme_with_a_note()
    {
        var (s, notes) = DeepSpeedConfig.NearestEquivalent(Gpt2Xl, NvmeOptimizer with { OptimizerRamBudget = Bytes.FromGiB(10) }, ranks: 1);

        Assert.Equal(OffloadTier.Nvme, s.OptimizerOffload);
        Assert.Null(s.OptimizerRamBudget);
        Assert.Contains(notes, n => n.Contains("cannot split", StringComparison.Ordinal) && n.Contains("NVMe", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_a_budget_holding_everything_When_converted_for_deepspeed_Then_all_cpu_with_a_note()
    {
        var (s, notes) = DeepSpeedConfig.NearestEquivalent(Gpt2Xl, NvmeOptimizer with { OptimizerRamBudget = Bytes.FromGiB(100) }, ranks: 1);

        Assert.Equal(OffloadTier.Cpu, s.OptimizerOffload);
        Assert.Contains(notes, n => n.Contains("whole optimizer in CPU RAM", StringComparison.Ordinal));
        var config = DeepSpeedConfig.Build(Gpt2Xl, s, 1, 1);
        Assert.Equal("cpu", config["zero_optimization"]!["offload_optimizer"]!["device"]!.GetValue<string>());
    }

    [Fact]
    public void Given_parameters_on_nvme_When_converted_for_deepspeed_Then_max_in_cpu_gets_a_note()
    {
        var (_, notes) = DeepSpeedConfig.NearestEquivalent(Gpt2Xl, NvmeOptimizer with { ParamOffload = OffloadTier.Nvme }, ranks: 1);
        Assert.Contains(notes, n => n.Contains("max_in_cpu", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_ram_too_small_for_the_whole_optimizer_When_tuned_Then_the_best_keeps_part_of_it_in_ram_within_the_margin()
    {
        // llama-2-7b's optimizer (~81 GB) cannot live in 100 GiB of RAM beside its gradients, parameters and the runtime
        // (112 GiB held it once the engine kept accumulation 1's gradients in bf16), nor on a 24 GB GPU; NVMe takes what RAM cannot.
        var rtx = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4");
        var hw = rtx with { Cpu = rtx.Cpu with { RamGib = new(100) } };
        var model = ModelCatalog.Default.Load("llama-2-7b");
        var request = new TuneRequest { Model = model, Hardware = hw, Budget = 600, Base = new TrainingSettings { NvmePath = "/nvme", SeqLen = 1024 } };

        var result = Tuner.Tune(request);

        var best = Assert.IsType<Candidate>(result.Best, exactMatch: false);
        Assert.Equal(OffloadTier.Nvme, best.Settings.OptimizerOffload);
        Assert.True(best.Settings.OptimizerRamBudget is not null, $"{Tuner.Describe(best.Settings)}; host {best.HostPeak}; allowance {Tuner.OptimizerRamAllowance(request, best.Settings)}; {best.Settings}");
        var budget = best.Settings.OptimizerRamBudget!.Value;
        Assert.True(budget.Value > 0);
        Assert.True(best.HostPeak.Value <= hw.Cpu.Ram.Value * (1 - request.MemoryHeadroom), $"host {best.HostPeak} of {hw.Cpu.Ram}");
        Assert.True(budget <= Tuner.OptimizerRamAllowance(request, best.Settings));
        Assert.False(Tuner.RunsOnDeepSpeed(best.Settings));
        Assert.True(result.DeepSpeedBest is null || result.DeepSpeedBest.Settings.OptimizerRamBudget is null || result.DeepSpeedBest.Settings.OptimizerOffload != OffloadTier.Nvme);
    }

    [Fact]
    public void Given_a_larger_margin_When_the_allowance_is_computed_Then_it_is_smaller()
    {
        var s = NvmeOptimizer;
        var loose = new TuneRequest { Model = Gpt2Xl, Hardware = H200, OptimizerRamMargin = 0.05 };
        var tight = loose with { OptimizerRamMargin = 0.3 };
        Assert.True(Tuner.OptimizerRamAllowance(tight, s) < Tuner.OptimizerRamAllowance(loose, s));
        Assert.Contains(TuneRequestRules.Check(loose with { OptimizerRamMargin = -0.1 }), p => p.Flag == "--optimizer-ram-margin");
    }
}
