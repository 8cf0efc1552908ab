using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>Exact simulated times on small hand-built programs.</summary>
public class StepSimulatorTests
{
    private static Operation Op(int id, ResourceKind resource, long ns, params int[] deps) => new()
    {
        Id = id, Kind = OpKind.Forward, Resource = resource, Phase = StepPhase.Forward, Unit = UnitId.Layer(id), Deps = deps, Bytes = new Bytes(ns),
    };

    private static StepProgram Program(params Operation[] ops) => new()
    {
        Model = ModelCatalog.Default.Load("tiny-gpt"),
        Settings = new TrainingSettings(),
        Ops = ops,
        StaticLevels = new Dictionary<MemoryTier, long>(),
        Shape = ProgramShape.DeepSpeed,
        Topology = new Topology(1, 1),
        FirstStep = false,
    };

    // Each test op's duration in ns is its Bytes value, so the expected times can be worked by hand.
    private static StepResult Run(StepProgram program) => StepSimulator.Simulate(program, op => new SimDuration(op.Bytes.Value), keepTimeline: true);

    [Fact]
    public void Given_a_read_then_compute_and_a_second_read_When_simulated_Then_the_drive_serves_in_order_and_compute_overlaps()
    {
        // nvme: A 0–10, C 10–17; compute: B waits for A, 10–15. The step ends at 17, on the drive.
        var result = Run(Program(Op(0, ResourceKind.Nvme, 10), Op(1, ResourceKind.Compute, 5, 0), Op(2, ResourceKind.Nvme, 7)));
        var spans = result.Spans!.ToDictionary(s => s.OpId);
        Assert.Equal((0L, 10L), (spans[0].StartNs, spans[0].EndNs));
        Assert.Equal((10L, 15L), (spans[1].StartNs, spans[1].EndNs));
        Assert.Equal((10L, 17L), (spans[2].StartNs, spans[2].EndNs));
        Assert.Equal(17, result.Time.Nanoseconds);
        Assert.Equal(ResourceKind.Nvme, result.Bottleneck);
        Assert.Equal(17, result.CriticalPath[ResourceKind.Nvme].Nanoseconds);
        Assert.False(result.CriticalPath.ContainsKey(ResourceKind.Compute));
    }

    [Fact]
    public void Given_a_chain_across_resources_When_simulated_Then_the_critical_path_follows_the_dependencies()
    {
        // h2d 0–4 → compute 4–24 → d2h 24–27, while the drive idles after 0–3.
        var result = Run(Program(Op(0, ResourceKind.H2d, 4), Op(1, ResourceKind.Nvme, 3), Op(2, ResourceKind.Compute, 20, 0), Op(3, ResourceKind.D2h, 3, 2)));
        Assert.Equal(27, result.Time.Nanoseconds);
        Assert.Equal(ResourceKind.Compute, result.Bottleneck);
        Assert.Equal(4, result.CriticalPath[ResourceKind.H2d].Nanoseconds);
        Assert.Equal(20, result.CriticalPath[ResourceKind.Compute].Nanoseconds);
        Assert.Equal(3, result.CriticalPath[ResourceKind.D2h].Nanoseconds);
        Assert.Equal(3, result.Busy[ResourceKind.Nvme].Nanoseconds);
        Assert.Equal(3 / 27.0, result.Utilization(ResourceKind.Nvme), 9);
    }

    [Fact]
    public void Given_memory_effects_When_simulated_Then_the_peak_is_the_highest_level_reached()
    {
        var ops = new[]
        {
            new Operation { Id = 0, Kind = OpKind.ParamUpload, Resource = ResourceKind.H2d, Phase = StepPhase.Forward, Unit = UnitId.Layer(0), Deps = [], Bytes = new Bytes(10),
                Effects = [new MemoryEffect(MemoryTier.Gpu, 100, AtEnd: false)] },
            new Operation { Id = 1, Kind = OpKind.ParamUpload, Resource = ResourceKind.H2d, Phase = StepPhase.Forward, Unit = UnitId.Layer(1), Deps = [], Bytes = new Bytes(10),
                Effects = [new MemoryEffect(MemoryTier.Gpu, 100, AtEnd: false)] },
            new Operation { Id = 2, Kind = OpKind.Forward, Resource = ResourceKind.Compute, Phase = StepPhase.Forward, Unit = UnitId.Layer(0), Deps = [0], Bytes = new Bytes(30),
                Effects = [new MemoryEffect(MemoryTier.Gpu, -100, AtEnd: true)] },
            new Operation { Id = 3, Kind = OpKind.Forward, Resource = ResourceKind.Compute, Phase = StepPhase.Forward, Unit = UnitId.Layer(1), Deps = [1, 2], Bytes = new Bytes(30),
                Effects = [new MemoryEffect(MemoryTier.Gpu, -100, AtEnd: true)] },
        };
        var result = Run(Program(ops));
        Assert.Equal(70, result.Time.Nanoseconds);
        Assert.Equal(200, result.MemoryPeaks[MemoryTier.Gpu].Value);
        Assert.Equal(0, result.MemoryTimeline![MemoryTier.Gpu][^1].Bytes);
    }
}
