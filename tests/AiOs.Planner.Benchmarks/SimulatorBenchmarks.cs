using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using BenchmarkDotNet.Attributes;

namespace AiOs.Planner.Benchmarks;

/// <summary>Issue 3's speed targets: one gpt3-175b step on an 8-GPU node under 10 ms; 10,000 settings under 10 s.</summary>
[MemoryDiagnoser]
public class SimulatorBenchmarks
{
    private ModelSpec _model = null!;
    private HardwareProfile _node = null!;
    private TrainingSettings _infinity = null!;
    private TrainingSettings[] _sweep = null!;

    [GlobalSetup]
    public void Setup()
    {
        _model = ModelCatalog.Default.Load("gpt3-175b");
        _node = ProfileCatalog.Default.Load("h100-node");
        _infinity = Settings.Infinity;
        _sweep = Settings.Sweep(10_000).ToArray();
    }

    /// <summary>One steady-state step of gpt3-175b, parameters and optimizer on NVMe, 8 GPUs.</summary>
    [Benchmark]
    public StepResult Gpt3OneStep() => Simulator.Predict(_model, _node, _infinity);

    /// <summary>The tuner on gpt3-175b with a budget of 10,000 candidates (issue 6: at most 10 s).</summary>
    [Benchmark]
    public int Gpt3Tune() => AiOs.Planner.Tuning.Tuner.Tune(new AiOs.Planner.Tuning.TuneRequest { Model = _model, Hardware = _node, Budget = 10_000 }).Evaluated;

    /// <summary>10,000 different settings of gpt3-175b on the node, one after the other on one core.</summary>
    [Benchmark]
    public double Gpt3TenThousandSettings()
    {
        double best = double.MaxValue;
        foreach (var s in _sweep) best = Math.Min(best, Simulator.Predict(_model, _node, s).Time.Seconds);
        return best;
    }
}

/// <summary>The settings the benchmarks simulate.</summary>
public static class Settings
{
    public static TrainingSettings Infinity { get; } = new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.Nvme, OptimizerOffload = OffloadTier.Nvme, NvmePath = "/nvme",
        ActivationCheckpointing = true, MicroBatch = 4, SeqLen = 2048, BufferSize = 700_000_000, SubGroupSize = 100_000_000,
    };

    /// <summary>A deterministic spread over placement, micro-batch, accumulation, aio, buffers, prefetch and schedule.</summary>
    public static IEnumerable<TrainingSettings> Sweep(int count)
    {
        var random = new Random(20261127);
        OffloadTier[] tiers = [OffloadTier.Cpu, OffloadTier.Nvme];
        for (int i = 0; i < count; i++)
        {
            var optimizer = tiers[random.Next(2)];
            yield return Infinity with
            {
                ParamOffload = tiers[random.Next(2)],
                OptimizerOffload = optimizer,
                MicroBatch = 1 << random.Next(4),
                GradAccumulation = 1 + random.Next(4),
                PrefetchDepth = random.Next(4),
                BufferCount = 4 + random.Next(12),
                SubGroupSize = 50_000_000L << random.Next(4),
                PipelineRead = random.Next(2) == 0,
                PipelineWrite = random.Next(2) == 0,
                Schedule = random.Next(2) == 0 ? StepSchedule.DeepSpeed : StepSchedule.Overlapped,
                Aio = new AioSettings { BlockSize = Units.Bytes.FromKiB(128 << random.Next(7)), QueueDepth = 1 << random.Next(7), IntraOpParallelism = 1 + random.Next(8) },
            };
        }
    }
}
