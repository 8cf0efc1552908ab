using AiOs.Planner.Engine.Probes;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The engine-kernel probe's per-kind dispatch floors (<see cref="EngineKernelProbeOptions.FloorFamilies"/>), run on the CPU.</summary>
public class EngineKernelProbeKindFloorTests
{
    [Fact]
    public void Given_floor_families_of_several_kinds_When_probed_on_the_cpu_Then_each_distinct_other_kind_gets_one_positive_floor_entry()
    {
        var family = ModelCatalog.Default.Load("tiny-gpt");
        var llama = ModelCatalog.Default.Load("tiny-llama");
        var options = new EngineKernelProbeOptions
        {
            Family = family,
            // tiny-gpt's own kind, tiny-llama's twice (one entry), gpt2's (dropout: another kind than tiny-gpt's).
            FloorFamilies = [family, llama, llama with { Name = "tiny-llama-again" }, ModelCatalog.Default.Load("gpt2")],
            Device = "cpu",
            Precision = Precision.Fp32,
            HiddenSizes = [32, 64],
            Shapes = [(1, 4), (2, 8)],
            FloorShape = (1, 4),
            FloorChain = 2,
            HeadShapes = [(1, 4)],
            OptimizerElements = 1_000,
            Repeats = 1,
        };

        var m = EngineKernelProbe.Measure(options);

        Assert.Equal(EngineLayerKind.Of(family), m.Kind);
        Assert.Equal([EngineLayerKind.Of(llama), EngineLayerKind.Gpt2], m.KindFloors!.Select(k => k.Kind));
        Assert.Equal(["tiny-llama", "gpt2"], m.KindFloors!.Select(k => k.Family));
        Assert.All(m.KindFloors!, k => Assert.True(k.ForwardSeconds > 0 && k.AutogradSeconds > 0 && k.BackwardSeconds > 0, $"{k.Kind}: a floor is not positive"));
        // Each other kind's work-bound passes, for its work ratio to the main fit: at the widest layer and the shape of most tokens.
        Assert.All(m.KindFloors!, k =>
        {
            Assert.Equal(["forward", "recompute", "backward"], k.Work.Select(w => w.Pass));
            Assert.All(k.Work, w => Assert.True(w.Hidden == 64 && w.MicroBatch == 2 && w.SeqLen == 8 && w.Seconds > 0 && w.Flops > 0, $"{k.Kind}: {w}"));
        });
    }
}
