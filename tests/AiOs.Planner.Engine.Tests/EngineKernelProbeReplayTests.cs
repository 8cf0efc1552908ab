using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The engine-kernel probe's passes replayed from CUDA graphs (<see cref="EngineKernelProbeOptions.GraphShapes"/>): timed on CUDA for
/// every hidden size and graph shape, none on a CPU.
/// </summary>
public sealed class EngineKernelProbeReplayTests
{
    private static EngineKernelProbeOptions Options(string device) => new()
    {
        Family = ModelCatalog.Default.Load("tiny-gpt"),
        Device = device,
        Precision = device == "cpu" ? Precision.Fp32 : Precision.Bf16,
        HiddenSizes = [64, 128],
        Shapes = [(2, 64), (4, 64)],
        GraphShapes = [(1, 64), (4, 64)],
        FloorShape = (1, 4),
        FloorChain = 2,
        HeadShapes = [(1, 8)],
        OptimizerElements = 1_000,
        MatmulHiddenSizes = [],
        Repeats = 1,
    };

    [Fact]
    public void Given_the_cpu_When_probed_Then_no_pass_is_replayed()
    {
        var m = EngineKernelProbe.Measure(Options("cpu"));

        Assert.Null(m.Replayed);
        Assert.NotEmpty(m.Layers);
        Assert.Null(EngineKernelProbe.MeasureReplays(Options("cpu")));
    }

    [GpuTheory]
    [InlineData("cuda")]
    public void Given_cuda_When_probed_Then_a_forward_and_a_backward_are_replayed_at_every_hidden_size_and_graph_shape(string device)
    {
        var lines = new List<string>();
        var m = EngineKernelProbe.Measure(Options(device), lines.Add);
        // The same shapes alone, as calibrate-gpu takes them after its other measurements.
        Assert.Equal(8, EngineKernelProbe.MeasureReplays(Options(device), lines.Add)!.Count);

        Assert.DoesNotContain(lines, l => l.StartsWith("warning:", StringComparison.Ordinal));
        var replayed = m.Replayed!;
        Assert.Equal(2 * 2 * 2, replayed.Count);
        Assert.Equal([(64, 1), (64, 4), (128, 1), (128, 4)], replayed.Select(s => (s.Hidden, s.MicroBatch)).Distinct());
        Assert.All(replayed, s => Assert.True(s.Seconds > 0 && s.Flops > 0 && s.SeqLen == 64, $"{s}"));
        Assert.Equal(replayed.Count / 2, replayed.Count(s => s.IsBackward));
    }
}
