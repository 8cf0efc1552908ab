using AiOs.Planner.Hardware;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;
using AiOs.Planner.Simulation;
using AiOs.Planner.Simulation.Program;
using AiOs.Planner.Units;

namespace AiOs.Planner.Core.Tests;

/// <summary>
/// The engine with the optimizer offloaded and the parameters on the device: each sub-group's CPU update writes its updated
/// training-precision copy into pinned staging and queues its copy to the device without waiting, so the copy is a
/// <see cref="OpKind.ResidentUpload"/> on the host link after the update, not CPU time inside it, and outside the host's
/// own upload order (<see cref="ResourceKind.QueuedH2d"/>): nothing after the update waits for it but its dependents.
/// </summary>
public class ResidentUploadTests
{
    private static readonly HardwareProfile H200 = ProfileCatalog.Default.Load("h200-1x-calibrated");
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt") with { NumLayers = 3 };

    private static TrainingSettings OptimizerOnly(StepSchedule schedule = StepSchedule.DeepSpeed, OffloadTier parameters = OffloadTier.None, int accumulation = 1) => new()
    {
        ZeroStage = ZeroStage.Infinity, ParamOffload = parameters, OptimizerOffload = OffloadTier.Cpu, Precision = Precision.Bf16,
        MicroBatch = 1, SeqLen = 16, SubGroupSize = 1000, Schedule = schedule, GradAccumulation = accumulation,
    };

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, 1)]
    [InlineData(StepSchedule.Overlapped, 2)]
    public void Given_resident_parameters_and_a_cpu_optimizer_When_built_Then_each_update_is_priced_as_adam_alone_and_followed_by_its_upload_on_the_host_link(
        StepSchedule schedule, int accumulation)
    {
        var s = OptimizerOnly(schedule, accumulation: accumulation);
        var program = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, H200, s);
        var steps = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep).ToList();
        var uploads = program.Ops.Where(o => o.Kind == OpKind.ResidentUpload).ToList();

        Assert.NotEmpty(steps);
        Assert.Equal(steps.Count, uploads.Count);
        foreach (Operation step in steps)
        {
            // Adam at its rate, beside backward's downloads or not; beside the last micro-batch's gradient sums, lengthened by them (HostMemoryContentionTests).
            var alone = SimDuration.FromSeconds(step.Parameters / H200.Cpu.AdamParamsPerS.Value);
            Assert.Equal(alone.Seconds, costs.WorkAlone(step, Tiny.HiddenSize).Seconds, 8);
            if (accumulation == 1) Assert.Equal(alone, costs.Duration(step, Tiny.HiddenSize));
            else Assert.True(costs.Duration(step, Tiny.HiddenSize) > alone, "the adds beside the update lengthen it");
            Operation upload = Assert.Single(uploads, u => u.Deps.Contains(step.Id));
            Assert.Equal(ResourceKind.QueuedH2d, upload.Resource);
            Assert.Equal(step.SubGroup, upload.SubGroup);
            Assert.Equal(Bytes.OfElements(step.Parameters, 2), upload.Bytes);
            Assert.Equal(upload.Bytes / H200.HostLink!.H2d(pinned: true), costs.Duration(upload, Tiny.HiddenSize));
        }
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, 1)]
    [InlineData(StepSchedule.Overlapped, 2)]
    public void Given_resident_parameters_and_a_cpu_optimizer_When_simulated_Then_each_upload_starts_after_its_update_and_the_next_step_waits_for_the_last(
        StepSchedule schedule, int accumulation)
    {
        var s = OptimizerOnly(schedule, accumulation: accumulation);
        var program = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.Engine);
        var result = StepSimulator.Simulate(program, Simulator.Costs(program, H200, s), keepTimeline: true);
        var spans = result.Spans!.ToDictionary(x => x.OpId);
        var uploads = program.Ops.Where(o => o.Kind == OpKind.ResidentUpload).ToList();

        Assert.NotEmpty(uploads);
        foreach (Operation upload in uploads)
        {
            Span update = spans[upload.Deps.Single()];
            Assert.Equal(OpKind.OptimizerStep, update.Kind);
            Assert.True(spans[upload.Id].StartNs >= update.EndNs, $"{upload} starts before its update ends.");
            Assert.True(spans[upload.Id].EndNs > spans[upload.Id].StartNs);
            // The step ends (and the next step's first forward of the unit starts) only once the upload has landed.
            Assert.True(result.Time.Nanoseconds >= spans[upload.Id].EndNs);
        }
        Assert.Equal(uploads.Sum(u => u.Bytes.Value), result.Traffic.H2d.Value);
    }

    [Fact]
    public void Given_checkpoints_in_cpu_ram_and_updates_during_backward_When_simulated_Then_a_fetch_after_an_update_in_program_order_need_not_wait_for_it()
    {
        // gpt2's layers at a short sequence: each layer's update takes longer than the passes between two fetches.
        var s = OptimizerOnly(StepSchedule.Overlapped) with { ActivationCheckpointing = true, ActivationOffload = OffloadTier.Cpu, SubGroupSize = 100_000_000 };
        var program = StepScheduler.Build(ModelCatalog.Default.Load("gpt2") with { NumLayers = 6 }, H200, s, false, ProgramShape.Engine);
        var result = StepSimulator.Simulate(program, Simulator.Costs(program, H200, s), keepTimeline: true);
        var spans = result.Spans!.ToDictionary(x => x.OpId);
        var ops = program.Ops;

        // Each fetch that comes after some update in program order, and does not depend on it, starts without waiting for
        // that update's copy (in the host's upload order it used to wait for the update itself).
        var pairs = (from fetch in ops.Where(o => o.Kind == OpKind.ActivationFetch)
                     from upload in ops.Where(o => o.Kind == OpKind.ResidentUpload && o.Id < fetch.Id)
                     where !ProgramGraph.Ancestors(ops, fetch).Contains(upload.Id)
                     select (fetch, upload)).ToList();
        Assert.NotEmpty(pairs);
        Assert.Contains(pairs, p => spans[p.fetch.Id].StartNs < spans[p.upload.Id].StartNs);
        Assert.DoesNotContain(ops, o => o.Resource == ResourceKind.H2d && o.Deps.Any(d => ops[d].Kind == OpKind.ResidentUpload));
    }

    [Fact]
    public void Given_a_cpu_device_When_built_with_the_engines_shape_Then_each_update_keeps_a_resident_upload_that_moves_nothing()
    {
        var cpu = ProfileCatalog.Default.Load("ci-2core-24gb");
        var s = OptimizerOnly();
        var program = StepScheduler.Build(Tiny, cpu, s, false, ProgramShape.Engine);
        var costs = Simulator.Costs(program, cpu, s);

        var uploads = program.Ops.Where(o => o.Kind == OpKind.ResidentUpload).ToList();
        Assert.Equal(program.Ops.Count(o => o.Kind == OpKind.OptimizerStep), uploads.Count);
        Assert.All(uploads, u => Assert.Equal((Bytes.Zero, SimDuration.Zero), (u.Bytes, costs.Duration(u, Tiny.HiddenSize))));
    }

    [Theory]
    [InlineData(StepSchedule.Delayed, OffloadTier.None)]  // the write-back operation uploads instead
    [InlineData(StepSchedule.DeepSpeed, OffloadTier.Cpu)] // the next pass's uploads carry them
    public void Given_a_delayed_update_or_streamed_parameters_When_built_Then_no_update_is_followed_by_a_resident_upload(StepSchedule schedule, OffloadTier parameters)
    {
        var program = StepScheduler.Build(Tiny, H200, OptimizerOnly(schedule, parameters), false, ProgramShape.Engine);

        Assert.Contains(program.Ops, o => o.Kind == OpKind.OptimizerStep);
        Assert.DoesNotContain(program.Ops, o => o.Kind == OpKind.ResidentUpload);
    }

    [Fact]
    public void Given_the_deepspeed_shape_When_built_Then_its_updates_write_back_on_the_host_link_as_before_and_none_is_a_resident_upload()
    {
        var s = OptimizerOnly();
        var program = StepScheduler.Build(Tiny, H200, s, false, ProgramShape.DeepSpeed);
        var steps = program.Ops.Where(o => o.Kind == OpKind.OptimizerStep).ToList();

        Assert.NotEmpty(steps);
        Assert.DoesNotContain(program.Ops, o => o.Kind == OpKind.ResidentUpload);
        Assert.All(steps, step => Assert.Single(program.Ops, o => o.Kind == OpKind.ParamWriteBack && o.Resource == ResourceKind.H2d && o.Deps.Contains(step.Id)));
    }
}
