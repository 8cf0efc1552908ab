using AiOs.Planner.Descriptions;
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

    private static List<(Operation Op, SimDuration Time)> Updates(TrainingSettings s, HardwareProfile? hw = null)
    {
        hw ??= H200;
        var program = StepScheduler.Build(Model, hw, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, hw, s);
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
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineUpdatePass(s));
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
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, CpuUpdatePass.Fp32Gradients);
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
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, CpuUpdatePass.Fp32Gradients);
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
        double rate = H200.Cpu.AdamRateFor(s.OptimizerState, StepCosts.EngineUpdatePass(s));

        var updates = Updates(s);

        Assert.NotEmpty(updates);
        Assert.False(StepCosts.EngineCopiesFp16Apart(s));
        foreach (var (op, time) in updates.Where(u => u.Op.Slot < 0 || parameters != OffloadTier.Nvme))
            Assert.Equal(op.Parameters / rate, time.Seconds, tolerance: 2e-9); // SimDuration counts whole nanoseconds
    }

    /// <summary>A profile whose three fp32-state passes have distinct rates, so a test can tell which one priced an update.</summary>
    private static HardwareProfile WithRates(double? fp16)
    {
        var cpu = H200.Cpu with
        {
            AdamParamsPerS = Figure.Measured(4e9, "2026-12-08", "test"),
            AdamBf16ParamsPerS = Figure.Measured(5e9, "2026-12-08", "test"),
            AdamFp16ParamsPerS = fp16 is { } r ? Figure.Measured(r, "2026-12-08", "test") : null,
        };
        return H200 with { Cpu = cpu };
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, OffloadTier.Cpu)]
    [InlineData(StepSchedule.Delayed, OffloadTier.Cpu)]
    [InlineData(StepSchedule.DeepSpeed, OffloadTier.Nvme)]
    public void Given_fp16_training_with_fp32_state_When_the_engines_CPU_updates_are_priced_Then_they_take_the_fp16_passs_rate(StepSchedule schedule, OffloadTier optimizer)
    {
        var hw = WithRates(fp16: 2.5e9);
        var s = Offloaded(OffloadTier.Cpu, schedule, Precision.Fp16) with { OptimizerOffload = optimizer, NvmePath = optimizer == OffloadTier.Nvme ? "/nvme" : null };

        var updates = Updates(s, hw);

        Assert.Equal(CpuUpdatePass.Fp16Copy, StepCosts.EngineUpdatePass(s));
        Assert.NotEmpty(updates);
        // The delayed schedule's updates beside the copies are lengthened beyond this; none is shorter than its parameters at 2.5 G/s.
        foreach (var (op, time) in updates)
            Assert.True(time.Seconds >= op.Parameters / 2.5e9 - 2e-9, $"{time} for {op.Parameters} parameters: faster than the fp16 pass");
        if (schedule == StepSchedule.DeepSpeed && optimizer == OffloadTier.Cpu)
            foreach (var (op, time) in updates) Assert.Equal(op.Parameters / 2.5e9 + hw.Cpu.OptimizerCallOverhead, time.Seconds, tolerance: 2e-9);
    }

    [Fact]
    public void Given_a_profile_with_an_fp16_rate_When_read_Then_it_is_kept_under_its_snake_case_key_and_checked()
    {
        var node = System.Text.Json.JsonSerializer.SerializeToNode(WithRates(fp16: 2.5e9), DescriptionJson.Options)!;
        Assert.Equal(2.5e9, node["cpu"]!["adam_fp16_params_per_s"]!["value"]!.GetValue<double>());
        Assert.Null(node["cpu"]!["adam_fp16_rate"]); // the derived rate is not written
        node["cpu"]!["adam_fp16_params_per_s"] = 123e6;
        Assert.Equal(123e6, ProfileCatalog.Parse(node.ToJsonString(), "test.json").Cpu.AdamFp16Rate.Value);

        node["cpu"]!["adam_fp16_params_per_s"] = -1;
        var e = Assert.ThrowsAny<Exception>(() => ProfileCatalog.Parse(node.ToJsonString(), "test.json"));
        Assert.Contains("adam_fp16_params_per_s", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_profile_without_the_fp16_figure_When_fp16_updates_are_priced_Then_they_take_the_fp32_gradient_rate_times_the_measured_ratio()
    {
        var hw = WithRates(fp16: null);

        Assert.Equal(4e9 * CpuSpec.DefaultAdamFp16Ratio, hw.Cpu.AdamRateFor(OptimizerStateFormat.Fp32, CpuUpdatePass.Fp16Copy));
        Assert.Equal(FigureSource.Estimate, hw.Cpu.AdamFp16Rate.Provenance?.Source);
    }

    [Theory]
    [InlineData(Precision.Bf16, 1, ExecutorKind.Aios, CpuUpdatePass.Bf16Gradients)]
    [InlineData(Precision.Bf16, 2, ExecutorKind.Aios, CpuUpdatePass.Fp32Gradients)] // fp32 sums
    [InlineData(Precision.Fp32, 1, ExecutorKind.Aios, CpuUpdatePass.Fp32Gradients)]
    [InlineData(Precision.Fp16, 1, ExecutorKind.Aios, CpuUpdatePass.Fp16Copy)]
    [InlineData(Precision.Fp16, 4, ExecutorKind.Aios, CpuUpdatePass.Fp16Copy)]
    [InlineData(Precision.Fp16, 1, ExecutorKind.DeepSpeed, CpuUpdatePass.Fp32Gradients)] // DeepSpeed's CPU Adam writes no fp16 copy in its pass
    [InlineData(Precision.Fp16, 1, ExecutorKind.Aios, CpuUpdatePass.Fp32Gradients, OffloadTier.Nvme)] // the fp32 write-back instead
    [InlineData(Precision.Fp16, 1, ExecutorKind.Aios, CpuUpdatePass.Fp16Copy, OffloadTier.None)]
    [InlineData(Precision.Fp16, 1, ExecutorKind.Aios, CpuUpdatePass.Fp32Gradients, OffloadTier.None, StepSchedule.Delayed)] // MasterWriteBack casts
    public void Given_a_precision_and_executor_When_the_CPU_update_pass_is_chosen_Then_it_is_the_one_that_runs(Precision precision, int accumulation, ExecutorKind executor, CpuUpdatePass expected,
        OffloadTier parameters = OffloadTier.Cpu, StepSchedule schedule = StepSchedule.DeepSpeed)
    {
        var s = Offloaded(parameters, schedule, precision) with { GradAccumulation = accumulation, Executor = executor };

        Assert.Equal(expected, StepCosts.EngineUpdatePass(s));
    }

    [Theory]
    [InlineData(Precision.Fp16, OptimizerStateFormat.Fp32, 30)] // the fp16 copy written in the pass
    [InlineData(Precision.Bf16, OptimizerStateFormat.Fp32, 28)]
    [InlineData(Precision.Fp16, OptimizerStateFormat.EightBit, 18)]
    public void Given_a_pass_When_the_updates_traffic_is_counted_for_what_runs_beside_it_Then_it_is_the_bytes_that_pass_moves(Precision precision, OptimizerStateFormat state, int bytes) =>
        Assert.Equal(bytes, StepCosts.UpdateBytesPerParameter(Offloaded(OffloadTier.Cpu, StepSchedule.Delayed, precision, state)));

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
