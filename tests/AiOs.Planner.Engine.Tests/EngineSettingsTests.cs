using AiOs.Planner.Engine.Execution;
using AiOs.Planner.Models;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

public sealed class EngineSettingsTests
{
    private static readonly ModelSpec Tiny = ModelCatalog.Default.Load("tiny-gpt");

    [Fact]
    public void Given_SeveralUnsupportedSettings_When_Checked_Then_OneErrorNamesEachOfThem()
    {
        TrainingSettings s = LayerwiseTrainerTests.Small() with
        {
            Precision = Precision.Fp16,
            Schedule = StepSchedule.Overlapped,
            ParamOffload = OffloadTier.Nvme,
            NvmePath = null,
            BufferSize = 10,
            SeqLen = 4096,
        };

        var e = Assert.Throws<ArgumentException>(() => EngineSettings.Check(Tiny, s, new EngineOptions()));

        Assert.Contains("fp16", e.Message);
        Assert.Contains("nvme_path", e.Message);
        Assert.Contains("buffer_size", e.Message);
        Assert.Contains("max_seq_len", e.Message);
    }

    [Fact]
    public void Given_SupportedSettings_When_Checked_Then_NothingIsThrown()
    {
        EngineSettings.Check(Tiny, LayerwiseTrainerTests.Small() with { Schedule = StepSchedule.Overlapped }, new EngineOptions { Clipping = new(1, ClipMode.PerUnit) });
    }

    [Theory]
    [InlineData(0.5, 1.0, 1.0)]
    [InlineData(4.0, 1.0, 0.25)]
    public void Given_ANorm_When_TheClipScaleIsComputed_Then_ItFollowsClipGradNorm(double norm, double max, double expected)
    {
        Assert.Equal(expected, LayerwiseTrainer.ClipScale(norm, max), 5);
    }

    [Theory]
    [InlineData(StepSchedule.DeepSpeed, true)]
    [InlineData(StepSchedule.Overlapped, false)]
    [InlineData(StepSchedule.Delayed, false)]
    public void Given_an_update_that_does_not_run_beside_a_gpu_s_work_When_its_threads_are_chosen_Then_it_takes_every_core(StepSchedule schedule, bool gpu)
    {
        int? threads = EngineSettings.CpuUpdateThreads(LayerwiseTrainerTests.Small() with { Schedule = schedule }, gpu);

        if (Environment.GetEnvironmentVariable("AIOS_CPU_ADAM_THREADS") is { Length: > 0 } set) Assert.Equal(int.Parse(set, System.Globalization.CultureInfo.InvariantCulture), threads);
        else Assert.Null(threads);
    }

    [Theory]
    [InlineData(StepSchedule.Overlapped)]
    [InlineData(StepSchedule.Delayed)]
    public void Given_an_update_beside_a_gpu_s_work_When_its_threads_are_chosen_Then_one_core_is_left_to_the_launching_thread(StepSchedule schedule)
    {
        int? threads = EngineSettings.CpuUpdateThreads(LayerwiseTrainerTests.Small() with { Schedule = schedule }, gpu: true);

        // Below four cores (the CI VM has two) there is none to spare: every core, as before.
        if (Environment.GetEnvironmentVariable("AIOS_CPU_ADAM_THREADS") is { Length: > 0 } set) Assert.Equal(int.Parse(set, System.Globalization.CultureInfo.InvariantCulture), threads);
        else if (Environment.ProcessorCount < 4) Assert.Null(threads);
        else Assert.Equal(Environment.ProcessorCount - 1, threads);
    }
}
