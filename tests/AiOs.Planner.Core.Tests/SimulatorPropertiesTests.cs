using AiOs.Planner.Hardware;
using AiOs.Planner.Memory;
using AiOs.Planner.Models;
using AiOs.Planner.Planning;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using FsCheck;
using FsCheck.Fluent;

namespace AiOs.Planner.Core.Tests;

/// <summary>Invariants of the scheduler and simulator over random models, machines and valid settings.</summary>
public class SimulatorPropertiesTests
{
    private static readonly ModelSpec[] Models = new[] { "tiny-gpt", "tiny-llama", "gpt2", "gpt2-xl", "llama-2-7b", "llama-3-8b", "gpt3-175b" }
        .Select(ModelCatalog.Default.Load).ToArray();
    private static readonly HardwareProfile[] Profiles = ProfileCatalog.Default.Names().Select(ProfileCatalog.Default.Load).ToArray();

    public sealed record Case(ModelSpec Model, HardwareProfile Hardware, TrainingSettings Settings)
    {
        public override string ToString() => $"{Model.Name} on {Hardware.Name}: {Settings}";
    }

    private static readonly Gen<Case> Cases =
        from model in Gen.Elements(Models)
        from hardware in Gen.Elements(Profiles)
        from stage in Gen.Elements(ZeroStage.None, ZeroStage.Zero1, ZeroStage.Zero2, ZeroStage.Zero3, ZeroStage.Infinity)
        from param in Gen.Elements(OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme)
        from optimizer in Gen.Elements(OffloadTier.None, OffloadTier.Cpu, OffloadTier.Nvme)
        from gradients in Gen.Elements<OffloadTier?>(null, OffloadTier.Nvme)
        from micro in Gen.Choose(1, 8)
        from accumulation in Gen.Choose(1, 3)
        from seq in Gen.Elements(64, 128, 1024)
        from precision in Gen.Elements(Precision.Fp32, Precision.Bf16)
        from checkpointing in Gen.Elements(true, false)
        from prefetch in Gen.Choose(0, 3)
        from buffers in Gen.Choose(1, 12)
        from subGroup in Gen.Elements(1_000_000L, 100_000_000L, 1_000_000_000L)
        from pipeline in Gen.Elements(true, false)
        from overlapped in Gen.Elements(true, false)
        from gpus in Gen.Choose(1, 8)
        from nodes in Gen.Choose(1, 3)
        let partitioned = stage is ZeroStage.Zero3 or ZeroStage.Infinity
        let optimizerTier = stage == ZeroStage.None ? OffloadTier.None : !partitioned && optimizer == OffloadTier.Nvme ? OffloadTier.Cpu : optimizer
        let settings = new TrainingSettings
        {
            Executor = ExecutorKind.DeepSpeed,
            ZeroStage = stage,
            ParamOffload = partitioned ? param : OffloadTier.None,
            OptimizerOffload = optimizerTier,
            GradientOffload = optimizerTier == OffloadTier.None ? null : gradients,
            NvmePath = "/nvme",
            MicroBatch = micro,
            GradAccumulation = accumulation,
            SeqLen = Math.Min(seq, model.MaxSeqLen),
            Precision = precision,
            ActivationCheckpointing = checkpointing,
            PrefetchDepth = prefetch,
            BufferCount = buffers,
            BufferSize = Math.Max(100_000_000, model.LargestTensorElements()),
            SubGroupSize = subGroup,
            PipelineRead = pipeline,
            PipelineWrite = !pipeline,
            Schedule = overlapped && optimizerTier != OffloadTier.None ? StepSchedule.Overlapped : StepSchedule.DeepSpeed,
            GpusPerNode = hardware.HasGpu ? Math.Min(gpus, hardware.GpusPerNode) : null,
            Nodes = hardware.Network is null ? 1 : nodes,
        }
        where SettingsRules.Check(settings, model, hardware).Count == 0 && (!settings.UsesNvme || hardware.Drives.Count > 0)
        select new Case(model, hardware, settings);

    private static void ForAll(Func<Case, bool> property) =>
        Prop.ForAll(Cases.ToArbitrary(), property).Check(Config.QuickThrowOnFailure.WithMaxTest(Runs));

    /// <summary>Cases per property: 60 in CI; set AIOS_PROPERTY_RUNS for a longer hunt.</summary>
    private static readonly int Runs = int.TryParse(System.Environment.GetEnvironmentVariable("AIOS_PROPERTY_RUNS"), out int n) ? n : 60;

    private static StepResult Predict(Case c, bool timeline = false) => Simulator.Predict(c.Model, c.Hardware, c.Settings, keepTimeline: timeline);

    [Fact]
    public void Given_any_step_When_simulated_Then_it_takes_at_least_the_busiest_resource() => ForAll(c =>
    {
        var step = Predict(c);
        return step.Busy.Values.All(b => b <= step.Time);
    });

    [Fact]
    public void Given_any_step_When_timed_without_the_kernel_Then_time_and_bottleneck_equal_the_kernels() => ForAll(c =>
    {
        var kernel = Predict(c);
        var fast = Simulator.PredictTime(c.Model, c.Hardware, c.Settings);
        return fast.Time == kernel.Time && fast.Bottleneck == kernel.Bottleneck && Math.Abs(fast.TokensPerSecond - kernel.TokensPerSecond) < 1e-9 * kernel.TokensPerSecond + 1e-12;
    });

    [Fact]
    public void Given_any_step_When_simulated_twice_Then_every_span_is_the_same() => ForAll(c =>
        Predict(c, timeline: true).Spans!.SequenceEqual(Predict(c, timeline: true).Spans!));

    [Fact]
    public void Given_any_step_When_every_rate_doubles_Then_it_is_never_slower() => ForAll(c =>
    {
        var faster = Faster(c.Hardware);
        var slow = Predict(c);
        var fast = Simulator.Predict(c.Model, faster, c.Settings);
        return fast.Time <= slow.Time;
    });

    [Fact]
    public void Given_any_step_When_one_resource_gets_faster_Then_it_is_never_slower() => ForAll(c =>
    {
        var step = Predict(c);
        var hw = c.Hardware;
        var faster = new[]
        {
            hw with { Drives = hw.Drives.Select(d => d with { Read = d.Read with { PeakGbps = d.Read.PeakGbps.Value * 3 } }).ToList() },
            hw with { Cpu = hw.Cpu with { AdamParamsPerS = hw.Cpu.AdamParamsPerS.Value * 3 } },
            hw.HostLink is null ? hw : hw with { HostLink = hw.HostLink with { H2dPinnedGbps = hw.HostLink.H2dPinnedGbps.Value * 3, H2dPageableGbps = hw.HostLink.H2dPageableGbps.Value * 3 } },
        };
        return faster.All(f => Simulator.Predict(c.Model, f, c.Settings).Time <= step.Time);
    });

    [Fact]
    public void Given_any_step_When_simulated_Then_no_bytes_are_created_or_lost() => ForAll(c =>
    {
        var program = StepScheduler.Build(c.Model, c.Hardware, c.Settings);
        var s = c.Settings;
        long Sum(OpKind kind) => program.Ops.Where(o => o.Kind == kind).Sum(o => o.Bytes.Value);
        long Elements(OpKind kind) => program.Ops.Where(o => o.Kind == kind).Sum(o => o.Parameters);
        int pb = s.ParamBytes;
        long updated = Elements(OpKind.OptimizerStep);
        bool gradsOnNvme = s.EffectiveGradientOffload == OffloadTier.Nvme;
        bool readsState = s.OptimizerOffload == OffloadTier.Nvme;
        // Every parameter's optimizer state read from NVMe is written back; every gradient written is read.
        // Per-layer shares round up, so per-layer and per-sub-group counts may differ by one element a layer.
        int units = c.Model.NumLayers + 2;
        bool Near(long a, long b) => Math.Abs(a - b) <= units;
        bool optimizer = (readsState || gradsOnNvme ? Near(Elements(OpKind.OptimizerRead), updated) : Elements(OpKind.OptimizerRead) == 0)
            && (readsState ? Near(Elements(OpKind.OptimizerWrite), updated) : Elements(OpKind.OptimizerWrite) == 0);
        bool gradients = gradsOnNvme ? Near(Elements(OpKind.GradWrite), updated) : Sum(OpKind.GradWrite) == 0;
        // Parameters read from NVMe are the parameters uploaded (GPU machines).
        bool parameters = s.ParamOffload != OffloadTier.Nvme || !c.Hardware.HasGpu || Sum(OpKind.ParamRead) == Sum(OpKind.ParamUpload);
        // Each GPU's share of every parameter is updated once and written back once.
        long share = (c.Model.TotalParameters + program.Gpus - 1) / program.Gpus;
        bool once = s.ZeroStage == ZeroStage.None ? updated == c.Model.TotalParameters : Math.Abs(updated - share) <= c.Model.NumLayers + 2;
        bool paramsInRam = s.ParamOffload == OffloadTier.Cpu || (s.ParamOffload == OffloadTier.None && !c.Hardware.HasGpu);
        bool writeBack = s.OptimizerOffload == OffloadTier.None || paramsInRam || Sum(OpKind.ParamWriteBack) == updated * pb;
        return optimizer && gradients && parameters && once && writeBack;
    });

    [Fact]
    public void Given_a_feasible_plan_When_simulated_Then_no_tier_peaks_above_its_capacity_or_the_closed_form() => ForAll(c =>
    {
        var plan = TrainingPlanner.Plan(c.Model, c.Hardware, c.Settings);
        if (!plan.Feasible || plan.Step is null) return true;
        var peaks = plan.Step.MemoryPeaks;
        bool gpu = !c.Hardware.HasGpu || peaks[MemoryTier.Gpu] <= plan.Memory.Gpu.Capacity - plan.Memory.GpuReserve;
        bool host = peaks[MemoryTier.CpuPinned] + peaks[MemoryTier.CpuPageable] <= c.Hardware.Cpu.Ram;
        bool closedForm = peaks[MemoryTier.Gpu] <= plan.Memory.GpuAllocatedPeak;
        return gpu && host && closedForm;
    });

    private static HardwareProfile Faster(HardwareProfile hw) => hw with
    {
        Gpu = hw.Gpu is null ? null : hw.Gpu with
        {
            MatmulTflops = new PerPrecision
            {
                Fp32 = hw.Gpu.MatmulRate(Precision.Fp32).Tflops * 2, Bf16 = hw.Gpu.MatmulRate(Precision.Bf16).Tflops * 2, Fp16 = hw.Gpu.MatmulRate(Precision.Fp16).Tflops * 2,
            },
            MemoryBandwidthGbps = hw.Gpu.MemoryBandwidthGbps.Value * 2,
        },
        HostLink = hw.HostLink is null ? null : hw.HostLink with
        {
            H2dPinnedGbps = hw.HostLink.H2dPinnedGbps.Value * 2, D2hPinnedGbps = hw.HostLink.D2hPinnedGbps.Value * 2,
            H2dPageableGbps = hw.HostLink.H2dPageableGbps.Value * 2, D2hPageableGbps = hw.HostLink.D2hPageableGbps.Value * 2,
        },
        GpuLink = hw.GpuLink is null ? null : hw.GpuLink with { Gbps = hw.GpuLink.Gbps.Value * 2 },
        Network = hw.Network is null ? null : hw.Network with { Gbps = hw.Network.Gbps.Value * 2 },
        Cpu = hw.Cpu with
        {
            AdamParamsPerS = hw.Cpu.AdamParamsPerS.Value * 2, MemoryBandwidthGbps = hw.Cpu.MemoryBandwidthGbps.Value * 2,
            MatmulGflops = hw.Cpu.MatmulRate.FlopsPerSecond / 1e9 * 2,
        },
        Drives = hw.Drives.Select(d => d with { Read = d.Read with { PeakGbps = d.Read.PeakGbps.Value * 2 }, Write = d.Write with { PeakGbps = d.Write.PeakGbps.Value * 2 } }).ToList(),
    };
}
