using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>The resident engine's device update also reads every gradient for Σg²: its bytes ride on the optimizer operation (aios executor only).</summary>
public class GradientNormPricingTests
{
    private static readonly HardwareProfile H100 = ProfileCatalog.Default.Load("h100-1x-vm");
    private static readonly ModelSpec Gpt2 = ModelCatalog.Default.Load("gpt2");

    private static double BytesPerParameter(TrainingSettings s, HardwareProfile hw)
    {
        var program = StepScheduler.Build(Gpt2, hw, s, false, ProgramShape.For(s, hw));
        // The engine's resident trainer updates unit by unit: one device update per unit.
        var updates = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep && o.Resource == ResourceKind.Compute).ToList();
        Assert.True(updates.Count > 0, string.Join(", ", program.Ops.GroupBy(o => (o.Kind, o.Resource)).Select(g => $"{g.Key}x{g.Count()}")));
        return updates.Sum(o => o.ElementwiseBytes) / updates.Sum(o => o.Parameters);
    }

    [Theory]
    [InlineData(Precision.Bf16, ExecutorKind.Aios, 28 + 2)]
    [InlineData(Precision.Fp32, ExecutorKind.Aios, 28 + 4)]
    [InlineData(Precision.Bf16, ExecutorKind.DeepSpeed, 28)]
    public void Given_a_resident_run_on_a_gpu_When_built_Then_the_update_moves_adam_s_bytes_and_the_engine_s_norm_bytes(Precision precision, ExecutorKind executor, double expected) =>
        Assert.Equal(expected, BytesPerParameter(new TrainingSettings { ZeroStage = ZeroStage.None, ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, Precision = precision, Executor = executor, MicroBatch = 1, SeqLen = 128 }, H100));

    [Fact]
    public void Given_mixed_precision_with_accumulation_When_built_Then_the_norm_reads_the_fp32_sums_once() =>
        Assert.Equal(28 + 4, BytesPerParameter(new TrainingSettings
        {
            ZeroStage = ZeroStage.None, ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, Precision = Precision.Bf16,
            GradAccumulation = 2, MicroBatch = 1, SeqLen = 128,
        }, H100));

    [Fact]
    public void Given_the_deepspeed_executor_and_a_fused_head_When_checked_Then_the_problem_names_the_flag_on_every_path() =>
        Assert.Contains(SettingsRules.Check(new TrainingSettings { Executor = ExecutorKind.DeepSpeed, HeadLoss = HeadLoss.Fused, MicroBatch = 1, SeqLen = 128 }, Gpt2, H100),
            p => p.Flag == "--head-loss");
}
