using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Tuning;

namespace AiOs.Planner.Core.Tests;

/// <summary>The tuner and --allow-8bit-optimizer: 8-bit state is searched only when allowed, and chosen where it pays.</summary>
public class TunerEightBitTests
{
    private static readonly ModelSpec Gpt2Xl = ModelCatalog.Default.Load("gpt2-xl");
    private static readonly HardwareProfile Rtx = ProfileCatalog.Default.Load("rtx4090-64gb-pcie4");

    /// <summary>
    /// The RTX box with host RAM too small for gpt2-xl's fp32 optimizer (24 GiB): it goes to NVMe, and at a global
    /// batch of 4 sequences the optimizer's swap bounds the step.
    /// </summary>
    private static HardwareProfile NvmeBound => Rtx with { Cpu = Rtx.Cpu with { RamGib = new Figure(24) } };

    private static TuneResult Tune(HardwareProfile hw, bool allow) => Tuner.Tune(new TuneRequest
    {
        Model = Gpt2Xl, Hardware = hw, Budget = 1500, GlobalBatch = 4, AllowEightBitOptimizer = allow, Base = new TrainingSettings { NvmePath = "/nvme" },
    });

    [Fact]
    public void Given_an_nvme_bound_machine_When_8bit_is_allowed_Then_the_best_keeps_8bit_state_and_says_why()
    {
        var without = Tune(NvmeBound, allow: false);
        var with = Tune(NvmeBound, allow: true);

        Assert.Equal(OffloadTier.Nvme, without.Best!.Settings.OptimizerOffload);
        Assert.Equal("nvme", without.Best.Bottleneck);
        Assert.Equal(OptimizerStateFormat.EightBit, with.Best!.Settings.OptimizerState);
        Assert.True(with.Best.TokensPerSecond > without.Best.TokensPerSecond);
        Assert.Contains(with.Explanation, l => l.StartsWith("8-bit optimizer state (--allow-8bit-optimizer)", StringComparison.Ordinal));
        // DeepSpeed keeps fp32 state: its plan (ds_config.json) never is an 8-bit one.
        Assert.Equal(OptimizerStateFormat.Fp32, with.DeepSpeedBest!.Settings.OptimizerState);
    }

    [Fact]
    public void Given_8bit_not_allowed_When_tuned_Then_no_candidate_uses_it()
    {
        var result = Tune(NvmeBound, allow: false);
        var reported = new[] { result.Best, result.DeepSpeedBest }.OfType<Candidate>().Concat(result.Alternatives).Concat(result.ParetoFront);
        Assert.All(reported, c => Assert.Equal(OptimizerStateFormat.Fp32, c.Settings.OptimizerState));
        Assert.DoesNotContain(result.Explanation, l => l.Contains("8-bit", StringComparison.Ordinal));
    }

    [Fact]
    public void Given_a_machine_where_the_optimizer_stays_on_the_gpu_When_8bit_is_allowed_Then_the_best_is_fp32()
    {
        var h200 = ProfileCatalog.Default.Load("h200-1x");
        var result = Tuner.Tune(new TuneRequest { Model = ModelCatalog.Default.Load("gpt2"), Hardware = h200, Budget = 800, AllowEightBitOptimizer = true });
        Assert.Equal(OffloadTier.None, result.Best!.Settings.OptimizerOffload);
        Assert.Equal(OptimizerStateFormat.Fp32, result.Best.Settings.OptimizerState);
    }

    [Fact]
    public void Given_split_master_weights_When_tuned_Then_candidates_keep_them_where_they_run_and_fall_back_to_fp32_elsewhere()
    {
        var result = Tuner.Tune(new TuneRequest
        {
            // fp32 state only: 8-bit would fit the optimizer in this machine's RAM, where split has nothing to save.
            Model = Gpt2Xl, Hardware = NvmeBound, Budget = 1500, GlobalBatch = 4,
            Base = new TrainingSettings { NvmePath = "/nvme", MasterWeights = MasterWeights.Split },
        });

        var best = Assert.IsType<Candidate>(result.Best);
        var all = result.Alternatives.Append(best).ToList();
        // Split where it can run (optimizer on NVMe, parameters off the device), fp32 masters everywhere else: every candidate can run.
        Assert.Contains(all, c => c.Settings.MasterWeights == MasterWeights.Split);
        Assert.All(all, c => Assert.Equal(SettingsValidator.SplitMasterProblem(c.Settings) is null ? MasterWeights.Split : MasterWeights.Fp32, c.Settings.MasterWeights));
    }
}
