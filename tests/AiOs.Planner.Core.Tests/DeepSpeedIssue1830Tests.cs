using System.Text.Json.Nodes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// DeepSpeed issues 1830/1831 (Data/anchors/literature.json): the paper's 0.1T GPT on 4 × A100 80GB, ZeRO-Infinity with
/// tiling factor 8, checkpoints of every layer in CPU RAM (PA_CPU), Megatron-LM v1.1.5's eager attention; nvidia-smi read
/// 19, 31 and 51 GB at micro-batch 4, 8 and 16, and micro-batch 32 ran out of memory. The issue does not say where the
/// model states lived; NVMe is assumed (CPU RAM would not hold 0.1T × 18 bytes on a 1 TB host), which changes no GPU figure.
/// </summary>
/// <remarks>
/// Honest verdict (2026-12-05): the GPU prediction is 20–24% under nvidia-smi (15.2, 23.6, 40.4 GiB), not within the 15%
/// asked, and micro-batch 32 is predicted to fit at 74 GiB of 79 where it ran out of memory. What is missing is not
/// fitted: nvidia-smi counts what the caching allocator reserved (the large attention matrices of changing sizes leave
/// freed blocks behind), and the memory model's slack (5%) is the allocator's share of the allocated peak on small blocks.
/// </remarks>
public class DeepSpeedIssue1830Tests
{
    private static readonly JsonNode Issue = LiteratureAnchors.Section("deepspeed_issues_1830_1831");
    private static readonly HardwareProfile DgxA100 = ProfileCatalog.Default.Load("dgx-a100");

    public static TheoryData<int, double> Measured()
    {
        var data = new TheoryData<int, double>();
        foreach (var row in Issue["measured"]!.AsArray()) data.Add(row!.Int("micro_batch"), row!.Number("gpu_gb"));
        return data;
    }

    private static ModelSpec PointOneT() => ModelCatalog.Default.Load(Issue.Text("model")) with { Dropout = Issue.Number("dropout") };

    private static MemoryPlan Plan(int microBatch) => MemoryPlanner.Plan(PointOneT(), DgxA100, new TrainingSettings
    {
        Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme,
        NvmePath = "/nvme", ActivationCheckpointing = true, ActivationOffload = OffloadTier.Cpu, EagerAttention = true,
        TilingFactor = Issue.Int("tiling_factor"), GpusPerNode = Issue.Int("gpus"), MicroBatch = microBatch, Precision = Precision.Fp16,
    });

    [Theory]
    [MemberData(nameof(Measured))]
    public void Given_a_measured_micro_batch_When_planned_Then_the_gpu_need_is_20_to_25_percent_under_nvidia_smi_not_within_15(int microBatch, double gpuGb)
    {
        // nvidia-smi's "GB" are MiB / 1024.
        double ratio = Plan(microBatch).Gpu.Peak.GiB / gpuGb;

        Assert.InRange(ratio, 0.75, 0.85);
    }

    [Fact]
    public void Given_micro_batch_32_which_ran_out_of_memory_When_planned_Then_it_is_predicted_to_fit_within_10_percent_of_the_card()
    {
        var gpu = Plan(Issue.Int("out_of_memory_micro_batch")).Gpu;

        // The recorded miss: the prediction fits, but inside the gap the 16-micro-batch row shows.
        Assert.True(gpu.Fits);
        Assert.True(gpu.Peak.GiB > 0.9 * gpu.Capacity.GiB, $"{gpu.Peak} of {gpu.Capacity}");
    }

    [Fact]
    public void Given_the_issue_rows_When_planned_Then_the_need_grows_with_the_micro_batch_as_measured()
    {
        double slope = (Plan(16).Gpu.Peak.GiB - Plan(8).Gpu.Peak.GiB) / 8, measured = (51.0 - 31.0) / 8;

        // Per sample: eager attention's score matrices, the recomputed layer and the logits (measured 2.5 GB).
        Assert.InRange(slope / measured, 0.75, 1.0);
    }
}
