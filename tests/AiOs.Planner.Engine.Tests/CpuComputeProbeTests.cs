using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// calibrate-cpu's probe times the engine's layers in the training precision: bf16 training computes in bf16 on a CPU, so its
/// passes carry bf16's saved bytes (half fp32's) and its embedding gradient's bytes are bf16's.
/// </summary>
public sealed class CpuComputeProbeTests
{
    private static CpuComputeProbeOptions Small(Precision precision, bool matmuls) => new()
    {
        Family = ModelCatalog.Default.Load("tiny-gpt"), HiddenSizes = [64], Shapes = [(1, 16)], HeadShapes = [(1, 16)], MatmulHidden = [64],
        Repeats = 1, LayerPrecision = precision, Matmuls = matmuls,
    };

    [Fact]
    public void Given_bf16_layers_without_the_matmul_benchmark_When_measured_Then_every_pass_is_timed_in_bf16_with_bf16s_saved_bytes()
    {
        var fp32 = CpuComputeProbe.Measure(Small(Precision.Fp32, matmuls: true));
        var bf16 = CpuComputeProbe.Measure(Small(Precision.Bf16, matmuls: false));

        Assert.Equal(Precision.Bf16, bf16.LayerPrecision);
        Assert.Empty(bf16.Matmuls);
        Assert.NotEmpty(fp32.Matmuls);
        // The same passes (layer forward, recompute, backward; head forward, backward), each with the same FLOPs and the work bf16
        // training is charged: a layer's saved bytes shrink (two-byte activations, one-byte masks kept); the head's differ (its loss keeps an fp32 copy of the logits in bf16).
        Assert.Equal(fp32.Layers.Select(l => (l.Unit, l.Pass)), bf16.Layers.Select(l => (l.Unit, l.Pass)));
        Assert.All(fp32.Layers.Zip(bf16.Layers), p =>
        {
            Assert.Equal(p.First.Flops, p.Second.Flops);
            if (p.First.Unit == "layer") Assert.True(p.Second.SavedBytes < p.First.SavedBytes, $"{p.First.Pass}: bf16 saves {p.Second.SavedBytes}, fp32 {p.First.SavedBytes}");
            else Assert.NotEqual(p.First.SavedBytes, p.Second.SavedBytes);
            Assert.True(p.Second.Seconds > 0);
        });
        Assert.True(bf16.VocabGradientGbps > 0);
    }
}
