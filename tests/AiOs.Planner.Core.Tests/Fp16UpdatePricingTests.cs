using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Optim;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// fp16's updates as the engine runs them. CpuAdam writes bf16 and fp16 working copies inside its pass; the 8-bit update writes
/// an fp16 one in a pass of its own over the updated master (PrecisionCast.ToFp16): those updates are priced 6 bytes per
/// parameter longer as a host pass, where the parameters are in RAM or on the device. On the GPU the fused AdamW takes fp32 and
/// bf16 only, so fp16 with fp32 moments is TorchOpsAdamW's operations, one pass each.
/// </summary>
public class Fp16UpdatePricingTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Model = ModelCatalog.Default.Load("gpt2") with { NumLayers = 4 };

    private static List<(Operation Op, SimDuration Time)> Updates(TrainingSettings s)
    {
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, H200, s);
        return program.Ops.Where(o => o.Resource == ResourceKind.Cpu && o.Kind == OpKind.OptimizerStep)
            .Select(o => (o, costs.Duration(o, Model.HiddenSize))).ToList();
    }

    private static TrainingSettings Offloaded(OffloadTier parameters, StepSchedule schedule, Precision precision, OptimizerStateFormat state = OptimizerStateFormat.Fp32) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = parameters, OptimizerOffload = OffloadTier.Cpu, Precision = precision, OptimizerState = state,
        MicroBatch = 2, SeqLen = 256, ActivationCheckpointing = true, Schedule = schedule,
        NvmePath = parameters == OffloadTier.Nvme ? "/nvme" : null,
    };

    [Theory]
    [InlineData(OffloadTier.Cpu, StepSchedule.DeepSpeed)]
    [InlineData(OffloadTier.Cpu, StepSchedule.Delayed)]
    [InlineData(OffloadTier.None, StepSchedule.DeepSpeed)]
    [InlineData(OffloadTier.None, StepSchedule.Overlapped)]
    public void Given_fp16_training_with_8bit_moments_in_ram_When_its_updates_are_priced_Then_each_takes_its_copys_own_pass_beyond_the_update(OffloadTier parameters, StepSchedule schedule)
    {
        var s = Offloaded(parameters, schedule, Precision.Fp16, OptimizerStateFormat.EightBit);
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineAdamOnBf16Gradients(s));
        var host = HostPass.Of(H200.Cpu, 1);

        var updates = Updates(s);

        Assert.NotEmpty(updates);
        foreach (var (op, time) in updates)
        {
            // 4 bytes read and 2 written per parameter: at the node's rate, or one worker's where one worker's chunks are longer.
            double copy = op.Parameters * 6.0 / host.Aggregate.BytesPerSecond;
            Assert.True(time.Seconds >= op.Parameters / rate + copy - 2e-9, $"{time} for {op.Parameters} parameters");
            Assert.Equal(op.Parameters / rate + host.Time(op.Parameters, 6).Seconds, time.Seconds, tolerance: 2e-9); // SimDuration counts whole nanoseconds
        }
    }

    [Fact]
    public void Given_a_sub_group_within_one_chunk_When_its_fp16_copy_is_priced_Then_one_worker_casts_it_at_one_threads_rate()
    {
        // gpt2's layers hold 7.1 M parameters; sub-groups of 500 K fit one chunk (1 Mi elements), which Chunked.Map runs inline.
        var s = Offloaded(OffloadTier.Cpu, StepSchedule.DeepSpeed, Precision.Fp16, OptimizerStateFormat.EightBit) with { SubGroupSize = 500_000 };
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, false);
        var oneThread = HostPass.Of(H200.Cpu, 1).PerThread;

        var updates = Updates(s);

        Assert.Contains(updates, u => u.Op.Parameters == 500_000);
        foreach (var (op, time) in updates.Where(u => u.Op.Parameters == 500_000))
            Assert.Equal(op.Parameters / rate + op.Parameters * 6.0 / oneThread.BytesPerSecond, time.Seconds, tolerance: 2e-9);
    }

    [Fact]
    public void Given_the_delayed_schedule_with_parameters_on_the_device_When_fp16_updates_are_priced_Then_the_copy_is_the_master_write_backs_alone()
    {
        var s = Offloaded(OffloadTier.None, StepSchedule.Delayed, Precision.Fp16, OptimizerStateFormat.EightBit);
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, false);
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.Engine);

        var updates = Updates(s);

        // The update writes no working copy; MasterWriteBack casts every parameter once per step (4 + 2 bytes each).
        Assert.False(StepCosts.EngineCopiesFp16Apart(s));
        foreach (var (op, time) in updates) Assert.Equal(op.Parameters / rate, time.Seconds, tolerance: 2e-9);
        var writeBack = Assert.Single(program.Ops, o => o.Kind == OpKind.MasterWriteBack);
        Assert.Equal(Bytes.OfElements(Model.TotalParameters, 6), writeBack.Bytes);
    }

    [Theory]
    [InlineData(Precision.Bf16, OffloadTier.Cpu, OptimizerStateFormat.EightBit)]
    [InlineData(Precision.Fp32, OffloadTier.Cpu, OptimizerStateFormat.EightBit)]
    [InlineData(Precision.Fp16, OffloadTier.Nvme, OptimizerStateFormat.EightBit)]
    [InlineData(Precision.Fp16, OffloadTier.Cpu, OptimizerStateFormat.Fp32)] // CpuAdam casts the fp16 copy inside its pass
    [InlineData(Precision.Fp16, OffloadTier.None, OptimizerStateFormat.Fp32)]
    [InlineData(Precision.Fp16, OffloadTier.Cpu, OptimizerStateFormat.Fp32, StepSchedule.Delayed)]
    [InlineData(Precision.Fp16, OffloadTier.Cpu, OptimizerStateFormat.Fp32, StepSchedule.Overlapped)]
    public void Given_a_copy_written_in_the_update_or_apart_anyway_When_priced_Then_the_update_is_its_parameters_at_the_rate(Precision precision, OffloadTier parameters, OptimizerStateFormat state,
        StepSchedule schedule = StepSchedule.DeepSpeed)
    {
        var s = Offloaded(parameters, schedule, precision, state);
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineAdamOnBf16Gradients(s));

        var updates = Updates(s);

        Assert.NotEmpty(updates);
        Assert.False(StepCosts.EngineCopiesFp16Apart(s));
        foreach (var (op, time) in updates.Where(u => u.Op.Slot < 0 || parameters != OffloadTier.Nvme))
            Assert.Equal(op.Parameters / rate, time.Seconds, tolerance: 2e-9); // SimDuration counts whole nanoseconds
    }

    [Theory]
    [InlineData(Precision.Bf16, 1, 28 + 2)]
    [InlineData(Precision.Fp32, 1, 28 + 4)]
    [InlineData(Precision.Fp16, 1, 100 + 2)]
    [InlineData(Precision.Fp16, 2, 94 + 4)] // the fp32 sums of accumulation need no widening
    [InlineData(Precision.Fp16, 1, 28 + 6 + 6 + 2, true)] // 8-bit moments: the fused 8-bit kernel, the gradient widened before it, the copy after
    [InlineData(Precision.Bf16, 1, 28 + 2, true)]
    public void Given_a_resident_run_When_its_device_update_is_built_Then_it_streams_the_bytes_of_the_update_the_engine_runs(Precision precision, int accumulation, int bytesPerParameter, bool eightBit = false)
    {
        var s = new TrainingSettings
        {
            ZeroStage = ZeroStage.None, ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, Precision = precision,
            MicroBatch = 2, SeqLen = 256, GradAccumulation = accumulation, OptimizerState = eightBit ? OptimizerStateFormat.EightBit : OptimizerStateFormat.Fp32,
        };

        // The resident trainer walks the units in DeepSpeed's order (ProgramShape.For), its update one device operation.
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.For(s, H200));

        var update = Assert.Single(program.Ops, o => o.Kind == OpKind.OptimizerStep && o.Resource == ResourceKind.Compute);
        Assert.Equal((double)Model.TotalParameters * bytesPerParameter, update.ElementwiseBytes);
    }
}
