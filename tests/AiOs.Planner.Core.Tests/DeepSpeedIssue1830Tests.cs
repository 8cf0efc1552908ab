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
/// The issue's GPT-2 small run on the same system (5 and 8 GB at micro-batch 8 and 16) is planned with the same settings.
/// </summary>
/// <remarks>
/// Honest verdict (2026-12-05): the GPU prediction is 29–35% under nvidia-smi (13.5, 20.2, 33.7 GiB against 19, 31, 51), not
/// within the 15% asked, and micro-batch 32 is predicted to fit at 61 GiB of 79 where it ran out of memory. The eager-attention
/// items follow Megatron-LM v1.1.5's source (settings_source in literature.json): the causal mask is a masked_fill_ in place on a
/// view of the baddbmm output, so the raw scores are not kept, but its backward (autograd's CopySlices) holds four score matrices
/// at once; the attention output is not kept apart from its merged copy. Counted from that code, the allocations that grow with
/// the micro-batch are at most the plan's (the plan even recomputes the whole layer where --split-transformers recomputes one
/// half), so what is missing is not fitted: nvidia-smi reads what PyTorch's caching allocator reserved, which is not modelled.
/// GPT-2 small: 3.8 and 6.3 GiB against 5 and 8 (22–24% under) with Megatron's loss, which its logits dominate; with Hugging
/// Face's loss the plan would be 7.0 and 12.7 (40–59% over).
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

    private static TrainingSettings EagerSettings() => new()
    {
        Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Infinity, EagerAttention = true, Precision = Precision.Fp16, SeqLen = Issue.Int("seq_len"),
    };

    private static MemoryPlan Plan(int microBatch) => Plan(PointOneT(), microBatch, Issue["vocab_parallel_cross_entropy"]!.GetValue<bool>());

    private static MemoryPlan Plan(ModelSpec model, int microBatch, bool vocabParallelLoss) => MemoryPlanner.Plan(model, DgxA100, new TrainingSettings
    {
        Executor = ExecutorKind.DeepSpeed, ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme,
        NvmePath = "/nvme", ActivationCheckpointing = true, ActivationOffload = OffloadTier.Cpu, EagerAttention = true, VocabParallelCrossEntropy = vocabParallelLoss,
        SeqLen = Issue.Int("seq_len"), TilingFactor = Issue.Int("tiling_factor"), GpusPerNode = Issue.Int("gpus"), MicroBatch = microBatch, Precision = Precision.Fp16,
    });

    public static TheoryData<int, double> MeasuredGpt2Small()
    {
        var data = new TheoryData<int, double>();
        foreach (var row in Issue["gpt2_small"]!["measured"]!.AsArray()) data.Add(row!.Int("micro_batch"), row!.Number("gpu_gb"));
        return data;
    }

    private static ModelSpec Gpt2Small() => ModelCatalog.Default.Load(Issue["gpt2_small"]!.Text("model")) with { Dropout = Issue.Number("dropout") };

    [Fact]
    public void Given_megatron_v115_eager_attention_When_counted_Then_softmax_output_mask_and_dropout_output_are_kept_and_the_mask_backward_holds_four_score_matrices()
    {
        var settings = EagerSettings();
        double scoresPerToken = Issue.Int("heads") * (double)Issue.Int("seq_len");

        // fp16 softmax output (2) + one-byte dropout mask (1) + fp16 dropout output (2); masked_fill_ keeps no scores.
        Assert.Equal(5 * scoresPerToken, ActivationModel.EagerAttentionBytesPerToken(PointOneT(), settings));
        // CopySlices: the incoming gradient, its copy, the slice clone and the masked result, 4 × 2 bytes, once the kept 5 are freed.
        Assert.Equal((8 - 5) * scoresPerToken, ActivationModel.BackwardTransientBytesPerToken(PointOneT(), settings));
    }

    [Fact]
    public void Given_eager_attention_without_dropout_When_counted_Then_the_mask_backward_is_six_bytes_beyond_the_kept_softmax_output()
    {
        var settings = EagerSettings();
        var noDropout = PointOneT() with { Dropout = 0 };
        double scoresPerToken = Issue.Int("heads") * (double)Issue.Int("seq_len");

        // Only the fp16 softmax output is kept (2); the mask's backward still holds four fp16 score matrices (8).
        Assert.Equal(2 * scoresPerToken, ActivationModel.EagerAttentionBytesPerToken(noDropout, settings));
        Assert.Equal((8 - 2) * scoresPerToken, ActivationModel.BackwardTransientBytesPerToken(noDropout, settings));
    }

    [Fact]
    public void Given_eager_attention_When_a_layer_is_counted_Then_the_attention_output_is_not_kept_beside_its_merged_copy()
    {
        var eager = EagerSettings();
        var fused = eager with { EagerAttention = false };
        var m = PointOneT();

        // SDPA keeps its output for backward; Megatron's bmm with V keeps its inputs, so only the merged (permuted) copy stays.
        double eagerWithoutScores = ActivationModel.LayerBytesPerToken(m, eager) - ActivationModel.EagerAttentionBytesPerToken(m, eager);
        Assert.Equal(ActivationModel.LayerBytesPerToken(m, fused) - 2.0 * m.HiddenSize, eagerWithoutScores);
    }

    [Theory]
    [MemberData(nameof(Measured))]
    public void Given_a_measured_micro_batch_When_planned_Then_the_gpu_need_is_25_to_40_percent_under_nvidia_smi_not_within_15(int microBatch, double gpuGb)
    {
        // nvidia-smi's "GB" are MiB / 1024.
        double ratio = Plan(microBatch).Gpu.Peak.GiB / gpuGb;

        // The recorded miss (13.5/19, 20.2/31, 33.7/51): outside the 15% asked, on the low side.
        Assert.InRange(ratio, 0.60, 0.75);
    }

    [Fact]
    public void Given_micro_batch_32_which_ran_out_of_memory_When_planned_Then_it_is_predicted_to_fit_the_recorded_miss()
    {
        var gpu = Plan(Issue.Int("out_of_memory_micro_batch")).Gpu;

        // The recorded miss: the allocated-memory prediction (61 GiB) fits with a fifth of the card to spare.
        Assert.True(gpu.Fits);
        Assert.InRange(gpu.Peak.GiB / gpu.Capacity.GiB, 0.65, 0.80);
    }

    [Fact]
    public void Given_the_issue_rows_When_planned_Then_the_need_grows_slower_with_the_micro_batch_than_measured()
    {
        double slope = (Plan(16).Gpu.Peak.GiB - Plan(8).Gpu.Peak.GiB) / 8, measured = (51.0 - 31.0) / 8;

        // Per sample: the recomputed layer (eager attention kept) and the mask backward's score matrices, 1.7 GiB, against 2.5 measured.
        Assert.InRange(slope / measured, 0.60, 0.75);
    }

    [Fact]
    public void Given_megatrons_vocab_parallel_loss_When_the_logits_are_counted_Then_fp16_logits_and_one_fp32_copy_of_the_padded_vocabulary()
    {
        var m = Gpt2Small();
        var megatron = EagerSettings() with { VocabParallelCrossEntropy = true };

        // 50,257 padded to a multiple of 128 is 50,304: fp16 logits (2) and the fp32 copy the loss works on in place (4).
        Assert.Equal(6.0 * 50_304, ActivationModel.LogitsBytesPerToken(m, megatron));
        // In fp32 training output.float() is the logits themselves.
        Assert.Equal(4.0 * 50_304, ActivationModel.LogitsBytesPerToken(m, megatron with { Precision = Precision.Fp32 }));
        // Hugging Face's loss: logits, fp32 upcast, shifted copy, log-softmax over the unpadded vocabulary.
        Assert.Equal(14.0 * 50_257, ActivationModel.LogitsBytesPerToken(m, megatron with { VocabParallelCrossEntropy = false }));
    }

    [Theory]
    [MemberData(nameof(MeasuredGpt2Small))]
    public void Given_the_issues_gpt2_small_run_When_planned_with_megatrons_loss_Then_it_is_20_to_25_percent_under_nvidia_smi_where_the_hugging_face_loss_is_40_percent_over(int microBatch, double gpuGb)
    {
        // The loss's logits are the peak here (12 heads: the recompute is small); how they are kept decides the figure.
        double megatron = Plan(Gpt2Small(), microBatch, vocabParallelLoss: true).Gpu.Peak.GiB / gpuGb;
        double huggingFace = Plan(Gpt2Small(), microBatch, vocabParallelLoss: false).Gpu.Peak.GiB / gpuGb;

        // The recorded miss (3.8/5, 6.3/8), on the same side as the 0.1T's: the allocator's reserve is not modelled.
        Assert.InRange(megatron, 0.70, 0.85);
        Assert.True(huggingFace > 1.35, $"Hugging Face's loss: {huggingFace:F2} of nvidia-smi");
    }
}
