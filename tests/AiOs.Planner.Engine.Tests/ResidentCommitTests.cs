using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Engine.Metrics;
using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation.Program;
using static TorchSharp.torch;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// Which commits of a device-resident unit wait for their copy: the optimizer's update (and a step program's write-back) queue
/// it without waiting, every other writer waits (and first waits for a queued copy that may still read the staging), and
/// AIOS_BLOCKING_COMMIT makes the update wait too. On a CPU <see cref="FlatParameters.StageWrites"/> takes the device path.
/// </summary>
public sealed class ResidentCommitTests
{
    private static readonly ModelSpec Spec = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 2 };

    public ResidentCommitTests() => TorchRuntime.EnsureReady();

    private static ParameterSwapper Resident(bool blocking = false, ScalarType type = ScalarType.BFloat16)
    {
        var swapper = new ParameterSwapper(Spec, StorageTier.Device, type, CPU, null, new IoCounters(), new SpanTrace(TimeProvider.System))
        {
            WaitForCommits = blocking,
        };
        for (int u = 0; u <= Spec.NumLayers; u++) swapper.Resident(u).StageWrites = true;
        return swapper;
    }

    /// <summary>Whole numbers below 256 (exact in bf16), different for different starts.</summary>
    private static float[] Values(int count, float start) => Enumerable.Range(0, count).Select(i => start + i % 32).ToArray();

    private static float[] Read(FlatParameters p, long offset, int count) => p.Flat.narrow(0, offset, count).to(ScalarType.Float32).data<float>().ToArray();

    /// <summary>The optimizer's bf16 write and commit of <paramref name="values"/> at <paramref name="offset"/> of unit 0.</summary>
    private static void Update(ParameterSwapper swapper, long offset, float[] values)
    {
        Span<ushort> target = swapper.HalfTarget(0, offset, values.Length);
        Optim.PrecisionCast.ToWorking(values, System.Runtime.InteropServices.MemoryMarshal.AsBytes(target), ScalarType.BFloat16);
        swapper.CommitHalf(0, offset, values.Length);
    }

    [Fact]
    public void Given_fp16_resident_units_When_the_optimizer_asks_for_a_target_Then_it_gets_fp16_staging_and_its_fp16_values_land()
    {
        using var swapper = Resident(type: ScalarType.Float16);
        float[] values = Values(64, 1);

        Span<ushort> target = swapper.HalfTarget(0, 32, values.Length);
        Optim.PrecisionCast.ToFp16(values, System.Runtime.InteropServices.MemoryMarshal.AsBytes(target));
        swapper.CommitHalf(0, 32, values.Length);

        // The update writes fp16 in its pass only where the sink says its targets take fp16 (OptimizerStates.CopyTarget).
        Assert.True(swapper.TargetsFp16);
        Assert.Equal(values.Length, target.Length);
        Assert.Equal(values, Read(swapper.Resident(0), 32, 64));
    }

    [Fact]
    public void Given_a_resident_unit_When_the_optimizer_commits_its_update_Then_the_copy_is_queued_without_waiting_and_lands()
    {
        using var swapper = Resident();
        float[] values = Values(64, 1);

        Update(swapper, 32, values);

        Assert.True(swapper.Resident(0).CommitInFlight);
        Assert.Equal(values, Read(swapper.Resident(0), 32, 64));
    }

    [Fact]
    public void Given_blocking_commits_by_request_When_the_optimizer_commits_its_update_Then_it_waits()
    {
        using var swapper = Resident(blocking: true);

        Update(swapper, 0, Values(16, 3));

        Assert.False(swapper.Resident(0).CommitInFlight);
        Assert.Equal(Values(16, 3), Read(swapper.Resident(0), 0, 16));
    }

    [Theory]
    [InlineData(false, true)]  // a step program's write-back (the fp32 update, the delayed write-back of θ)
    [InlineData(true, false)]  // blocking by request
    public void Given_a_program_write_back_When_committed_Then_it_waits_only_by_request(bool blocking, bool inFlight)
    {
        using var swapper = Resident(blocking);

        swapper.WriteBack(0, 8, Values(8, 5), traced: false);

        Assert.Equal(inFlight, swapper.Resident(0).CommitInFlight);
        Assert.Equal(Values(8, 5), Read(swapper.Resident(0), 8, 8));
    }

    [Fact]
    public void Given_an_update_in_flight_When_a_checkpoint_is_restored_or_initial_values_stored_Then_each_waits_and_its_values_win()
    {
        using var swapper = Resident();
        int elements = (int)swapper.UnitElements(0);
        Update(swapper, 0, Values(elements, 1));
        Assert.True(swapper.Resident(0).CommitInFlight);

        swapper.WriteBack(0, 0, Values(elements, 100));

        Assert.False(swapper.Resident(0).CommitInFlight);
        Assert.Equal(Values(elements, 100), Read(swapper.Resident(0), 0, elements));

        Update(swapper, 4, Values(4, 7));
        swapper.StoreUnit(0, Values(elements, 200));

        Assert.False(swapper.Resident(0).CommitInFlight);
        Assert.Equal(Values(elements, 200), Read(swapper.Resident(0), 0, elements));
    }

    [Fact]
    public void Given_a_commit_in_flight_When_raw_bytes_are_loaded_Then_the_load_waits_and_replaces_the_buffer()
    {
        using var p = new FlatParameters(ParameterLayout.Single("w", 8), ScalarType.Float32, CPU) { StageWrites = true };
        p.StoreFloats(0, Values(8, 1), wait: false);
        Assert.True(p.CommitInFlight);
        byte[] bytes = new byte[32];
        Values(8, 50).AsSpan().CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.AsSpan()));

        p.LoadBytes(bytes);

        Assert.False(p.CommitInFlight);
        Assert.Equal(Values(8, 50), Read(p, 0, 8));
    }

    [Fact]
    public void Given_a_cpu_buffer_without_staging_When_written_Then_the_values_land_in_place_and_no_commit_is_queued()
    {
        using var p = new FlatParameters(ParameterLayout.Single("w", 8), ScalarType.Float32, CPU);
        Span<byte> target = p.WritableBytes(2, 4);
        Values(4, 9).AsSpan().CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(target));

        // In place: visible before any commit, and the commit (of either kind) has nothing to copy.
        Assert.Equal(Values(4, 9), Read(p, 2, 4));
        p.CommitWritable(2, 4, wait: false);
        Assert.False(p.CommitInFlight);
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, false)]
    [InlineData(StepSchedule.Overlapped, false)]
    [InlineData(StepSchedule.Overlapped, true)]
    public void Given_the_engines_own_program_for_an_optimizer_only_offload_When_built_Then_its_operations_are_numbered_as_the_simulators_on_a_gpu(
        StepSchedule schedule, bool checkpointsInRam)
    {
        // The update queues the copy itself (the handler does nothing), but the operation is there, so the engine's spans and
        // the prediction's timeline meet by operation id after the first update too.
        var settings = new TrainingSettings
        {
            ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.Cpu, Precision = Precision.Bf16,
            MicroBatch = 1, SeqLen = 16, Schedule = schedule, ActivationCheckpointing = checkpointsInRam,
            ActivationOffload = checkpointsInRam ? OffloadTier.Cpu : OffloadTier.None,
        };

        StepProgram engine = EngineProgram.For(Spec, settings);
        StepProgram predicted = StepScheduler.Build(Spec, ProfileCatalog.Default.Load("h200-1x-calibrated"), settings, false, ProgramShape.Engine);

        Assert.Contains(engine.Ops, o => o.Kind == OpKind.ResidentUpload);
        Assert.Equal(predicted.Ops.Select(o => (o.Id, o.Kind, o.Resource, o.Unit, o.MicroBatch, o.SubGroup)),
            engine.Ops.Select(o => (o.Id, o.Kind, o.Resource, o.Unit, o.MicroBatch, o.SubGroup)));
    }

    [Fact]
    public void Given_the_engines_own_program_for_an_optimizer_only_offload_When_built_Then_each_update_is_followed_by_a_resident_upload_of_nothing()
    {
        var settings = new TrainingSettings
        {
            ZeroStage = ZeroStage.Infinity, ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.Cpu, Precision = Precision.Bf16,
            MicroBatch = 1, SeqLen = 16, Schedule = StepSchedule.Overlapped,
        };

        StepProgram program = EngineProgram.For(Spec, settings);

        var steps = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep).ToList();
        Assert.NotEmpty(steps);
        Assert.All(steps, step => Assert.Single(program.Ops, o => o.Kind == OpKind.ResidentUpload && o.Deps.SequenceEqual([step.Id]) && o.Bytes.Value == 0));
    }
}
