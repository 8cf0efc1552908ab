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
        // Several ranks: not validated on a GPU, so refused with the fix.
        var dgx = ProfileCatalog.Default.Load("dgx-a100");
        Assert.Contains(SettingsRules.Check(Resident, model, dgx), p => p.Flag == "--cuda-graphs" && p.Message.Contains("--gpus 1"));
        Assert.DoesNotContain(SettingsRules.Check(Resident with { GpusPerNode = 1, Nodes = 1 }, model, dgx), p => p.Flag == "--cuda-graphs");
    }

    [Fact]
    public void Given_cuda_graphs_When_the_nearest_deepspeed_settings_are_made_Then_they_drop_the_graphs_and_say_so()
    {
        var (settings, notes) = DeepSpeed.DeepSpeedConfig.NearestEquivalent(ModelCatalog.Default.Load("gpt2"), Resident, 1);

        Assert.False(settings.CudaGraphs);
        Assert.Contains(notes, n => n.Contains("--cuda-graphs"));
    }

    [Theory]
    [InlineData(Precision.Bf16, 1, false)]
    [InlineData(Precision.Fp32, 2, true)]
    public void Given_cuda_graphs_When_the_device_memory_is_planned_Then_the_graphs_fixed_tensors_are_added(Precision precision, int accumulation, bool packedToo)
    {
        var model = ModelCatalog.Default.Load("gpt2-xl");
        var hw = ProfileCatalog.Default.Load("h200-1x-calibrated");
        var s = Resident with { MicroBatch = 2, Precision = precision, GradAccumulation = accumulation, CudaGraphs = false };

        var eager = Memory.EngineMemory.DevicePeak(model, hw, s, fused: true);
        var graphs = Memory.EngineMemory.DevicePeak(model, hw, s with { CudaGraphs = true }, fused: true);

        // Each layer's input gradient, layer 0's input and the last layer's given gradient: hidden × bytes per token each;
        // with fp32 accumulation every layer's packed gradients as well.
        long tokens = 2L * 1024;
        long expected = tokens * model.HiddenSize * s.ParamBytes * (model.NumLayers + 2L)
            + (packedToo ? model.LayerParameters * model.NumLayers * s.ParamBytes : 0);
        // The items, plus the allocator's slack the plan adds in proportion to them.
        Assert.Equal(expected * (1 + Memory.EngineMemory.SlackOf(s)), (graphs - eager).Value, tolerance: 2.0);
    }

    [Theory]
    [InlineData(1, false, ExecutorKind.Aios, true)]   // launch-bound: the note, with both steps
    [InlineData(8, false, ExecutorKind.Aios, false)]  // device-bound: the graphs save under 5%
    [InlineData(1, true, ExecutorKind.Aios, false)]   // asked for already
    [InlineData(1, false, ExecutorKind.DeepSpeed, false)]
    public void Given_a_plan_When_the_graphs_would_shorten_a_launch_bound_step_Then_a_note_says_by_how_much(
        int microBatch, bool graphs, ExecutorKind executor, bool noted)
    {
        var model = ModelCatalog.Default.Load("gpt2-xl");
        var hw = ProfileCatalog.Default.Load("h100-1x-vm");
        var s = Resident with { MicroBatch = microBatch, CudaGraphs = graphs, Executor = executor };

        var plan = Planning.TrainingPlanner.Plan(model, hw, s);

        // The note suggesting the graphs (not GraphWorkNote, which speaks where they are asked for already).
        string? note = plan.Notes.FirstOrDefault(n => n.Contains("--cuda-graphs") && n.Contains(" instead of "));
        Assert.Equal(noted, note is not null);
        if (note is null) return;
        double replayed = Simulation.Simulator.Predict(model, hw, s with { CudaGraphs = true }).Time.Seconds * 1e3;
        Assert.Contains($"{replayed:F1} ms instead of {plan.Step!.Time.Seconds * 1e3:F1} ms", note);
        Assert.True(replayed < plan.Step.Time.Seconds * 1e3 * 0.95);
    }
}
