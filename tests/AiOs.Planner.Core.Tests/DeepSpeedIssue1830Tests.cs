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
/// Honest verdict (2026-12-06): the GPU prediction is 31–38% under nvidia-smi (13.1, 19.4, 32.0 GiB against 19, 31, 51), not
/// within the 15% asked, and micro-batch 32 is predicted to fit at 57 GiB of 79 where it ran out of memory. The eager-attention
/// items now follow Megatron-LM v1.1.5's source (settings_source in literature.json): the causal mask is a masked_fill_ in place,
/// so the raw scores are not kept and one score-sized matrix is in flight, not two gradients on top of everything kept. What is
/// missing is not fitted: nvidia-smi reads what PyTorch's caching allocator reserved, and the allocator is not modelled.
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
        SeqLen = Issue.Int("seq_len"), TilingFactor = Issue.Int("tiling_factor"), GpusPerNode = Issue.Int("gpus"), MicroBatch = microBatch, Precision = Precision.Fp16,
    });

    [Fact]
    public void Given_megatron_v115_eager_attention_When_counted_Then_softmax_output_mask_and_dropout_output_are_kept_and_one_score_matrix_is_in_flight()
    {
        var settings = new TrainingSettings { Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Infinity, EagerAttention = true, Precision = Precision.Fp16, SeqLen = Issue.Int("seq_len") };
        double scoresPerToken = Issue.Int("heads") * (double)Issue.Int("seq_len");

        // fp16 softmax output (2) + one-byte dropout mask (1) + fp16 dropout output (2); masked_fill_ keeps no scores.
        Assert.Equal(5 * scoresPerToken, ActivationModel.EagerAttentionBytesPerToken(PointOneT(), settings));
        Assert.Equal(2 * scoresPerToken, ActivationModel.BackwardTransientBytesPerToken(PointOneT(), settings));
    }

    [Theory]
    [MemberData(nameof(Measured))]
    public void Given_a_measured_micro_batch_When_planned_Then_the_gpu_need_is_30_to_40_percent_under_nvidia_smi_not_within_15(int microBatch, double gpuGb)
    {
        // nvidia-smi's "GB" are MiB / 1024.
        double ratio = Plan(microBatch).Gpu.Peak.GiB / gpuGb;

        Assert.InRange(ratio, 0.60, 0.70);
    }

    [Fact]
    public void Given_micro_batch_32_which_ran_out_of_memory_When_planned_Then_it_is_predicted_to_fit_the_recorded_miss()
    {
        var gpu = Plan(Issue.Int("out_of_memory_micro_batch")).Gpu;

        // The recorded miss: the allocated-memory prediction fits with a quarter of the card to spare.
        Assert.True(gpu.Fits);
        Assert.InRange(gpu.Peak.GiB / gpu.Capacity.GiB, 0.65, 0.80);
    }

    [Fact]
    public void Given_the_issue_rows_When_planned_Then_the_need_grows_slower_with_the_micro_batch_than_measured()
    {
        double slope = (Plan(16).Gpu.Peak.GiB - Plan(8).Gpu.Peak.GiB) / 8, measured = (51.0 - 31.0) / 8;

        // Per sample: the recomputed layer (eager attention kept) and one score matrix in flight, 1.6 GiB, against 2.5 measured.
        Assert.InRange(slope / measured, 0.55, 0.70);
    }
}
