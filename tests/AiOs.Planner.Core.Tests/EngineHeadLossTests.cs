using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine's fused head and loss in the <c>aios</c> executor's device plan: the "logits and loss" item is one chunk of
/// logits and what stays beside it, where that is smaller than the full logits; the <c>deepspeed</c> executor keeps them.
/// </summary>
public class EngineHeadLossTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");

    private static TrainingSettings Offloaded(int microBatch) => new()
    {
        ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity, ActivationCheckpointing = true,
        Precision = Precision.Bf16, MicroBatch = microBatch, SeqLen = 1024,
    };

    [Theory]
    [InlineData("gpt2", true)] // streamed, a layer's backward sets gpt2's peak at 8,192 tokens (EngineBackwardMemoryTests)
    [InlineData("llama-3-8b", true)] // offloaded, three layers' gradient downloads in flight now outweigh its head
    public void Given_a_bf16_run_of_8192_tokens_When_planned_for_aios_Then_the_logits_item_is_one_chunk_and_what_stays(string name, bool resident)
    {
        var m = ModelCatalog.Default.Load(name);
        long tokens = 8 * 1024, v = m.VocabSize, h = m.HiddenSize, vh = v * h;
        // Resident without checkpointing (the head sets the peak either way since backward frees each layer's output and gradients, EngineBackwardMemoryTests).
        var s = resident ? Offloaded(8) with { ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, ZeroStage = ZeroStage.Zero2, ActivationCheckpointing = false } : Offloaded(8);
        s = s with { HeadLoss = HeadLoss.Fused }; // the fused head's bytes, with its kernel on this GPU

        var plan = EngineMemory.Plan(m, H200, s, Bytes.FromGB(11));

        // Chunk: whole 128-token tiles of fp32 logits within 256 MiB.
        long chunk = 256L * 1024 * 1024 / (4 * v) / 128 * 128;
        // The matmuls run on the vocabulary padded to a multiple of 64 (gpt2: 50,257 → 50,304; Llama 3's 128,256 already is).
        long p = (v + 63) / 64 * 64;
        // Kept: embedding output, norm input and output (bf16), the normed gradient (bf16), the head weight's bf16 gradient
        // sum over the padded rows, and where padded, the padded bf16 copy of the head weight.
        long kept = tokens * h * (3 * 2 + 2) + 2 * p * h + (p == v ? 0 : 2 * p * h);
        // One chunk: its bf16 logits, padded wide, which the kernel turns into their gradient in place, and one fp32 loss per row.
        long working = chunk * (p * 2 + 4);
        // Full logits: bf16, the fp32 upcast and the fp32 log-softmax for every token.
        long unfused = tokens * (3 * 2 * h + (2 + 4 + 4) * v);
        Assert.Equal(new Bytes(kept + working), plan.Gpu.Of("logits and loss"));
        Assert.True(plan.Gpu.Of("logits and loss").Value < unfused / 3, $"{plan.Gpu.Of("logits and loss")} against {new Bytes(unfused)} unfused");
        Assert.Contains("fused head", plan.Gpu.Items.Single(i => i.Name == "logits and loss").Note, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_gpt2_at_micro_batch_8_When_planned_Then_the_unfused_figure_is_its_backward_peak_and_deepspeed_keeps_full_logits()
    {
        var m = ModelCatalog.Default.Load("gpt2");
        long tokens = 8 * 1024;

        var deepspeed = MemoryPlanner.Plan(m, H200, Offloaded(8) with { Executor = ExecutorKind.DeepSpeed });
        var aios = EngineMemory.Plan(m, H200, Offloaded(8), Bytes.FromGB(11));

        // The loss's backward: the fp32 log-softmax, nll_loss's gradient and log-softmax's gradient (12 bytes × 50,257 per
        // token), 6 × 768 of states and the padded bf16 head weight copy (2 × 50,304 × 768): 4.71 GiB. Its forward (bf16
        // logits 50,304 wide, their fp32 copy and the log-softmax) was the 3.94 GiB planned before 2026-12-05.
        double expected = (tokens * (6.0 * 768 + 12 * 50_257) + 2.0 * 50_304 * 768) / (1L << 30);
        Assert.InRange(expected, 4.70, 4.72);
        Assert.Equal(expected, EngineHeadLoss.UnfusedBytes(tokens, m.VocabSize, m.HiddenSize, Precision.Bf16).GiB, 9);
        Assert.Equal(new Bytes((long)Math.Ceiling(ActivationModel.HeadBytesPerToken(m, Offloaded(8)) * tokens)), deepspeed.Gpu.Of("logits and loss"));
        Assert.True(aios.Gpu.Of("logits and loss") < deepspeed.Gpu.Of("logits and loss"));
    }

    [Fact]
    public void Given_few_tokens_and_a_large_head_When_planned_Then_fp16_keeps_the_unfused_head_and_bf16_runs_the_kernel()
    {
        // Llama 2 7B at 1,024 tokens: the fused head's summed weight gradient (0.26 GB) and its one chunk of every token (0.2 GB) outweigh the full logits (0.33 GB).
        var m = ModelCatalog.Default.Load("llama-2-7b");
        long tokens = 1024;

        var resident = Offloaded(1) with { ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, ZeroStage = ZeroStage.Zero2, ActivationCheckpointing = false };
        // fp16 has no kernel: the byte rule keeps the unfused head, which fits.
        var fp16 = resident with { Precision = Precision.Fp16 };
        var plan = EngineMemory.Plan(m, H200, fp16);
        Assert.False(EngineHeadLoss.FusingSavesBytes(tokens, m.VocabSize, m.HiddenSize, Precision.Fp16));
        Assert.Equal(EngineHeadLoss.UnfusedBytes(tokens, m.VocabSize, m.HiddenSize, Precision.Fp16), plan.Gpu.Of("logits and loss"));
        Assert.Contains("unfused", plan.Gpu.Items.Single(i => i.Name == "logits and loss").Note, StringComparison.Ordinal);

        // bf16 on a GPU: the kernel's fused head is the faster wherever it fits, so auto runs it even where it keeps more bytes.
        var bf16 = EngineMemory.Plan(m, H200, resident);
        Assert.Equal(EngineHeadLoss.FusedBytes(tokens, m.VocabSize, m.HiddenSize, Precision.Bf16, kernel: true), bf16.Gpu.Of("logits and loss"));
        Assert.Contains("with its kernel", bf16.Gpu.Items.Single(i => i.Name == "logits and loss").Note, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Precision.Fp32, 0)]
    [InlineData(Precision.Bf16, 2)]
    [InlineData(Precision.Fp16, 2)]
    public void Given_each_precision_When_the_fused_bytes_are_priced_Then_a_chunk_holds_fp32_logits_and_a_training_precision_copy(Precision precision, int copy)
    {
        long v = 50_257, h = 768, rows = EngineHeadLoss.ChunkTokens(v);

        // Two chunks against one: the difference is the chunk's working set and the per-token bytes of the second chunk.
        long one = EngineHeadLoss.FusedBytes(rows, v, h, precision).Value, two = EngineHeadLoss.FusedBytes(2 * rows, v, h, precision).Value;

        int a = precision == Precision.Fp32 ? 4 : 2;
        Assert.Equal(rows * h * (3 * a + EngineHeadLoss.NormedGradientBytes(precision)), two - one);
        Assert.True(rows * v * (4 + copy) <= one, $"one chunk's {rows} × {v} logits at {4 + copy} bytes exceed {one}");
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama-3-8b")]
    public void Given_the_kernels_chunk_When_the_tensor_ops_must_run_it_Then_their_shorter_chunk_holds_no_more_bytes(string name)
    {
        var m = ModelCatalog.Default.Load(name);
        long kernelRows = EngineHeadLoss.ChunkTokens(m.VocabSize), p = EngineHeadLoss.PaddedVocab(m.VocabSize);
        long opsRows = EngineHeadLoss.TensorOpsChunkTokens(kernelRows, Precision.Bf16);

        Assert.True(opsRows < kernelRows && opsRows % EngineHeadLoss.TokenMultiple == 0, $"{opsRows} rows against the kernel's {kernelRows}");
        // The tensor ops hold fp32 logits and a bf16 copy per row; the kernel's plan holds the bf16 logits and one fp32 loss.
        Assert.True(opsRows * p * (4 + 2) <= kernelRows * (p * 2 + 4), $"{opsRows * p * 6} bytes against the planned {kernelRows * (p * 2 + 4)}");
        Assert.Equal(kernelRows, EngineHeadLoss.TensorOpsChunkTokens(kernelRows, Precision.Fp32)); // fp32 holds 4·P either way
    }
}
