using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>What <c>--cuda-graphs</c> needs (<see cref="CudaGraphRule"/>), as the settings checks and the DeepSpeed config apply it.</summary>
public class CudaGraphRuleTests
{
    private static readonly TrainingSettings Resident = new() { MicroBatch = 1, SeqLen = 1024, Precision = Precision.Bf16, CudaGraphs = true };

    [Theory]
    [InlineData("executor", "--executor aios")]
    [InlineData("offload", "drop --cuda-graphs or the offload flags")]
    [InlineData("checkpointing", "drop one of the two")]
    public void Given_settings_the_graphs_cannot_run_When_checked_Then_the_problem_names_the_fix(string what, string fix)
    {
        TrainingSettings s = what switch
        {
            "executor" => Resident with { Executor = ExecutorKind.DeepSpeed },
            "offload" => Resident with { ZeroStage = ZeroStage.Zero3, OptimizerOffload = OffloadTier.Cpu },
            _ => Resident with { ActivationCheckpointing = true },
        };

        string? problem = CudaGraphRule.Problem(s);

        Assert.NotNull(problem);
        Assert.Contains(fix, problem);
        Assert.False(CudaGraphRule.Replays(s));
        Assert.Null(CudaGraphRule.Problem(s with { CudaGraphs = false }));
    }

    [Fact]
    public void Given_a_resident_aios_run_When_checked_Then_it_replays_and_a_gpu_profile_has_no_problem_while_a_cpu_one_does()
    {
        var model = ModelCatalog.Default.Load("gpt2");
        Assert.Null(CudaGraphRule.Problem(Resident));
        Assert.True(CudaGraphRule.Replays(Resident));

        Assert.DoesNotContain(SettingsRules.Check(Resident, model, ProfileCatalog.Default.Load("h100-1x-vm")), p => p.Flag == "--cuda-graphs");
        var cpu = SettingsRules.Check(Resident, model, ProfileCatalog.Default.Load("ci-2core-24gb-calibrated"));
        Assert.Contains(cpu, p => p.Flag == "--cuda-graphs" && p.Message.Contains("no GPU"));
    }

    [Fact]
    public void Given_cuda_graphs_When_the_nearest_deepspeed_settings_are_made_Then_they_drop_the_graphs_and_say_so()
    {
        var (settings, notes) = DeepSpeed.DeepSpeedConfig.NearestEquivalent(ModelCatalog.Default.Load("gpt2"), Resident, 1);

        Assert.False(settings.CudaGraphs);
        Assert.Contains(notes, n => n.Contains("--cuda-graphs"));
    }
}
