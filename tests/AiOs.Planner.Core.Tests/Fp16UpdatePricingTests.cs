using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// fp16's updates as the engine runs them. The CPU update writes a bf16 working copy inside CpuAdam's pass and an fp16 one in
/// a pass of its own over the updated master (PrecisionCast.ToFp16): fp16 updates are priced 6 bytes per parameter longer at
/// the host's memory rate, where the parameters are on the device or in RAM. On the GPU the fused AdamW takes fp32 and bf16
/// only, so fp16 is TorchOpsAdamW's operations, one pass each.
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

    private static TrainingSettings Offloaded(OffloadTier parameters, StepSchedule schedule, Precision precision) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = parameters, OptimizerOffload = OffloadTier.Cpu, Precision = precision,
        MicroBatch = 2, SeqLen = 256, ActivationCheckpointing = true, Schedule = schedule,
        NvmePath = parameters == OffloadTier.Nvme ? "/nvme" : null,
    };

    [Theory]
    [InlineData(OffloadTier.Cpu, StepSchedule.DeepSpeed)]
    [InlineData(OffloadTier.Cpu, StepSchedule.Delayed)]
    [InlineData(OffloadTier.None, StepSchedule.DeepSpeed)]
    public void Given_fp16_training_with_the_optimizer_in_ram_When_its_updates_are_priced_Then_each_takes_its_copys_own_pass_beyond_the_update(OffloadTier parameters, StepSchedule schedule)
    {
        var s = Offloaded(parameters, schedule, Precision.Fp16);
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineAdamOnBf16Gradients(s));
        double copy = 6.0 / HostPass.Of(H200.Cpu, 1).Aggregate.BytesPerSecond;

        var updates = Updates(s);

        Assert.NotEmpty(updates);
        foreach (var (op, time) in updates)
            Assert.Equal(op.Parameters / rate + op.Parameters * copy, time.Seconds, tolerance: 2e-9); // SimDuration counts whole nanoseconds
    }

    [Theory]
    [InlineData(Precision.Bf16, OffloadTier.Cpu)]
    [InlineData(Precision.Fp32, OffloadTier.Cpu)]
    [InlineData(Precision.Fp16, OffloadTier.Nvme)]
    public void Given_a_copy_written_in_the_update_or_apart_anyway_When_priced_Then_the_update_is_its_parameters_at_the_rate(Precision precision, OffloadTier parameters)
    {
        var s = Offloaded(parameters, StepSchedule.DeepSpeed, precision);
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
    public void Given_a_resident_run_When_its_device_update_is_built_Then_it_streams_the_bytes_of_the_update_the_engine_runs(Precision precision, int accumulation, int bytesPerParameter)
    {
        var s = new TrainingSettings
        {
            ZeroStage = ZeroStage.None, ParamOffload = OffloadTier.None, OptimizerOffload = OffloadTier.None, Precision = precision,
            MicroBatch = 2, SeqLen = 256, GradAccumulation = accumulation,
        };

        // The resident trainer walks the units in DeepSpeed's order (ProgramShape.For), its update one device operation.
        var program = StepScheduler.Build(Model, H200, s, false, ProgramShape.For(s, H200));

        var update = Assert.Single(program.Ops, o => o.Kind == OpKind.OptimizerStep && o.Resource == ResourceKind.Compute);
        Assert.Equal((double)Model.TotalParameters * bytesPerParameter, update.ElementwiseBytes);
    }
}
