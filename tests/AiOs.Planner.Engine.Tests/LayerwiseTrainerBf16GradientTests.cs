using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using static AiOs.Planner.Engine.Tests.LayerwiseTrainerTests;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Offloaded bf16 training at accumulation 1, where the CPU gradient store keeps bf16 (exact): losses and weights equal
/// the in-memory reference's (whose store keeps fp32 sums) bit for bit, with per-unit clipping reading every unit's Σg².
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class LayerwiseTrainerBf16GradientTests : IDisposable
{
    private readonly string _nvme = Directory.CreateTempSubdirectory("aios-nvme-").FullName;

    public void Dispose() => Directory.Delete(_nvme, recursive: true);

    public static TheoryData<OffloadTier, OffloadTier, StepSchedule> Placements() => new()
    {
        { OffloadTier.Cpu, OffloadTier.Cpu, StepSchedule.DeepSpeed },
        { OffloadTier.Cpu, OffloadTier.Cpu, StepSchedule.Overlapped },
        { OffloadTier.Nvme, OffloadTier.Nvme, StepSchedule.Overlapped },
        { OffloadTier.None, OffloadTier.Nvme, StepSchedule.DeepSpeed },
    };

    [Theory]
    [MemberData(nameof(Placements))]
    public void Given_bf16_at_accumulation_1_with_gradients_in_ram_When_trained_with_per_unit_clipping_Then_losses_and_weights_equal_the_reference(
        OffloadTier parameters, OffloadTier optimizer, StepSchedule schedule)
    {
        ModelSpec spec = ModelCatalog.Default.Load("tiny-llama");
        TrainingSettings settings = Small(Precision.Bf16) with
        {
            GradAccumulation = 1, ParamOffload = parameters, OptimizerOffload = optimizer, GradientOffload = OffloadTier.Cpu, Schedule = schedule, NvmePath = _nvme,
        };
        EngineOptions options = Options(new GradientClipping(0.5, ClipMode.PerUnit));
        Assert.True(AiOs.Planner.Memory.EngineMemory.HostGradientsInBf16(settings));

        var (losses, master) = Run(spec, settings, options, reference: false);
        var (refLosses, refMaster) = Run(spec, settings, options, reference: true);

        // Bit for bit: the widened bf16 gradients are the fp32 sums the reference keeps, and Σg² is taken in the same order.
        Assert.Equal(refLosses, losses);
        Assert.True(refLosses[^1] < refLosses[0] - 0.3, $"The reference did not learn: {refLosses[0]} → {refLosses[^1]}.");
        for (int u = 0; u < master.Length; u++) Assert.Equal(refMaster[u], master[u]);
    }
}
