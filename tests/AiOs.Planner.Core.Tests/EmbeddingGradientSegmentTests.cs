using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The embedding's backward in a streamed run makes a dense vocabulary × hidden gradient when every layer's blocks are freed;
/// the caching allocator can serve it only from a freed block as large (the padded head's copy, the logits), else it reserves
/// a new segment (llama-3.2-3b ran 0.73 GiB above its plan from that moment, 2026-12-06).
/// </summary>
public class EmbeddingGradientSegmentTests
{
    private static readonly HardwareProfile H100 = ProfileCatalog.Default.Load("h100-1x-vm");

    private static TrainingSettings Streamed(int microBatch, HeadLoss head) => new()
    {
        ParamOffload = OffloadTier.Cpu, OptimizerOffload = OffloadTier.Cpu, ZeroStage = ZeroStage.Infinity, ActivationCheckpointing = true,
        Precision = Precision.Bf16, MicroBatch = microBatch, SeqLen = 1024, HeadLoss = head, Executor = ExecutorKind.Aios,
    };

    [Fact]
    public void Given_an_unpadded_vocabulary_and_the_fused_head_When_planned_Then_the_embeddings_gradient_takes_a_segment_of_its_own()
    {
        // 128,256 is a multiple of 64: no padded copy of the head is freed, and a chunk's logits (512 tokens × 128,256 in bf16 with the
        // kernel, 131 MB) are smaller than the 0.79 GB gradient.
        var m = ModelCatalog.Default.Load("llama-3.2-3b");
        var s = Streamed(2, HeadLoss.Fused);

        var plan = EngineMemory.Plan(m, H100, s);

        Assert.Equal(new Bytes(2L * m.VocabSize * m.HiddenSize), plan.Gpu.Of("embedding gradient segment"));
    }

    [Fact]
    public void Given_gpt2s_padded_head_When_planned_Then_the_freed_padded_copy_holds_the_embeddings_gradient()
    {
        // 50,257 rows are padded to 50,304 for the matmul: that copy, freed after the loss, is larger than the gradient.
        var m = ModelCatalog.Default.Load("gpt2-xl");

        var plan = EngineMemory.Plan(m, H100, Streamed(8, HeadLoss.Fused));

        Assert.Equal(Bytes.Zero, plan.Gpu.Of("embedding gradient segment"));
    }

    [Fact]
    public void Given_the_unfused_head_When_planned_Then_its_freed_fp32_logits_hold_the_embeddings_gradient()
    {
        // 2,048 tokens × 128,256 × 4 bytes of fp32 logits against 128,256 × 3,072 × 2 bytes of gradient.
        var m = ModelCatalog.Default.Load("llama-3.2-3b");

        Assert.Equal(Bytes.Zero, EngineMemory.EmbeddingGradientSegment(m, Streamed(2, HeadLoss.Unfused), 2048, fused: false, gpu: true));
        Assert.True(EngineMemory.EmbeddingGradientSegment(m, Streamed(2, HeadLoss.Fused), 2048, fused: true, gpu: true) > Bytes.Zero);
    }

    [Fact]
    public void Given_fp16_and_the_unfused_head_When_planned_Then_no_fp32_head_gradient_holds_the_embeddings_gradient()
    {
        // The fp32 V × h block is the fused fp16 head's; the unfused one frees only its logits (4 B × 1,024 tokens × V < 2 B × V × 4,096).
        var m = ModelCatalog.Default.Load("llama-3-8b");
        var s = Streamed(1, HeadLoss.Unfused) with { Precision = Precision.Fp16 };

        Assert.Equal(new Bytes(2L * m.VocabSize * m.HiddenSize), EngineMemory.EmbeddingGradientSegment(m, s, 1024, fused: false, gpu: true));
        Assert.Equal(Bytes.Zero, EngineMemory.EmbeddingGradientSegment(m, s, 1024, fused: true, gpu: true));
    }

    [Fact]
    public void Given_a_resident_run_When_planned_Then_no_segment_is_added()
    {
        var m = ModelCatalog.Default.Load("llama-3.2-3b");
        var s = Streamed(2, HeadLoss.Fused) with { ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, ZeroStage = ZeroStage.Zero2 };

        Assert.Equal(Bytes.Zero, EngineMemory.Plan(m, H100, s).Gpu.Of("embedding gradient segment"));
    }
}
