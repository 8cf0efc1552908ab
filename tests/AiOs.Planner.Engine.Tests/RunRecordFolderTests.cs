using System.Text.Json;
using AiOs.Planner.Models;
using AiOs.Planner.Records;
using AiOs.Planner.Settings;

namespace AiOs.Planner.Engine.Tests;

/// <summary>The run folder the engine writes is the typed run record of the current schema, and reads back typed.</summary>
public sealed class RunRecordFolderTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-record-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Given_an_nvme_run_When_its_folder_is_read_Then_settings_steps_spans_and_summary_are_the_record_of_the_current_schema()
    {
        string nvme = Path.Combine(_root, "nvme");
        TrainingSettings settings = LayerwiseTrainerTests.Small() with
        {
            ParamOffload = OffloadTier.Nvme,
            OptimizerOffload = OffloadTier.Nvme,
            NvmePath = nvme,
            GradAccumulation = 1,
        };
        var request = new EngineRunRequest
        {
            Model = ModelCatalog.Default.Load("tiny-gpt"),
            Settings = settings,
            Steps = 2,
            RunsRoot = Path.Combine(_root, "runs"),
            Options = LayerwiseTrainerTests.Options() with { RunId = "record" },
        };

        RunSummary summary = EngineRun.Execute(request);
        var run = RecordedRun.Load(Path.Combine(_root, "runs", "record"));

        Assert.Equal(RecordSchema.Current, run.Schema);
        Assert.Equal(RecordSchema.Current, run.Summary!.Schema);
        // The settings section is TrainingSettings as a whole: every field, including ones added later, round-trips.
        Assert.Equal(JsonSerializer.Serialize(settings, RecordSchema.WriteOptions), JsonSerializer.Serialize(run.Settings!.Settings, RecordSchema.WriteOptions));
        Assert.Equal("record", run.Settings.RunId);
        Assert.Equal(2, run.Settings.Steps);
        Assert.Equal(request.Options.Seed, run.Settings.Engine!.Value.GetProperty("seed").GetInt64());
        Assert.Equal([1, 2], run.Steps.Select(s => s.Step));
        Assert.NotEmpty(run.MeasuredSpans);
        // Every span of the program carries its operation's id, once per step; waits outside the program carry −1.
        var programSpans = run.MeasuredSpans.Where(s => s.OpId >= 0).ToList();
        Assert.NotEmpty(programSpans);
        Assert.All(programSpans.GroupBy(s => (s.Step, s.OpId)), g => Assert.Single(g));
        Assert.All(run.MeasuredSpans.Where(s => s.OpId < 0), s => Assert.StartsWith("wait", s.Operation));
        Assert.Contains(run.MeasuredSpans, s => s.Resource == "nvme" && s.Bytes > 0);
        // The NVMe tier is measured: the swap files exist while the steps run.
        Assert.All(run.Steps, s => Assert.True(s.NvmeSwapBytes > 0, $"step {s.Step}: {s.NvmeSwapBytes}"));
        Assert.Equal(run.Steps.Max(s => s.NvmeSwapBytes), summary.PeakNvmeSwapBytes);
        Assert.Equal(summary.TokensPerSecond, run.Summary.TokensPerSecond);
        // The CPU times over the steps are recorded on Linux (null elsewhere) and read back as written.
        Assert.Equal(OperatingSystem.IsLinux(), summary.CpuUse is not null);
        Assert.Equal(summary.CpuUse, run.Summary.CpuUse);
        Assert.True(summary.CpuUse is null || summary.CpuUse is { WallSeconds: > 0, OwnSeconds: > 0 }, $"{summary.CpuUse}");
    }
}
