using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using AiOs.Planner.Descriptions;
using AiOs.Planner.Records;

namespace AiOs.Planner.Core.Tests.Records;

/// <summary>The run record read back: a folder today's engine wrote before the record was typed, and the schema check.</summary>
public sealed class RecordedRunTests
{
    /// <summary>The committed run folder (Data/legacy-run, see its README), copied so a test can change it.</summary>
    internal static string LegacyRun([CallerFilePath] string here = "")
    {
        string source = Path.Combine(Path.GetDirectoryName(here)!, "..", "Data", "legacy-run");
        string dir = Directory.CreateTempSubdirectory("aios-legacy-run-").FullName;
        foreach (string file in Directory.GetFiles(source)) File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        return dir;
    }

    [Fact]
    public void Given_a_folder_written_before_the_typed_record_When_loaded_Then_every_part_reads_as_schema_0()
    {
        string dir = LegacyRun();

        var run = RecordedRun.Load(dir);

        Assert.Equal(0, run.Schema);
        Assert.Equal(8, run.Steps.Count);
        Assert.Equal(128, run.Steps[0].Tokens);
        Assert.Equal(88, run.MeasuredSpans.Count);
        Assert.All(run.MeasuredSpans, s => Assert.Equal(-1, s.OpId));
        Assert.Equal(Enumerable.Range(0, run.PredictedSpans.Count), run.PredictedSpans.Select(s => s.OpId).Order());
        Assert.Equal("tiny-gpt", run.Settings!.Model.Name);
        Assert.Equal(1234, run.Settings.Engine!.Value.GetProperty("seed").GetInt32());
        Assert.Equal("bytes", run.Settings.Tokenization);
        Assert.Equal(8, run.Summary!.StepsCompleted);
        Assert.Equal(run.Summary.TokensPerSecond, run.TokensPerSecond, 6);
        Assert.NotNull(run.Prediction!.Step);
        Assert.Empty(run.Warnings);
    }

    [Theory]
    [InlineData("settings.json")]
    [InlineData("summary.json")]
    public void Given_a_file_of_a_newer_schema_When_loaded_Then_the_error_names_the_file_and_both_versions(string file)
    {
        string dir = LegacyRun();
        string path = Path.Combine(dir, file);
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        o["schema"] = RecordSchema.Current + 1;
        // A newer schema may change any field: the version must be refused before the shape is read.
        o["model"] = 42;
        File.WriteAllText(path, o.ToJsonString());

        var e = Assert.Throws<DescriptionException>(() => RecordedRun.Load(dir));

        Assert.Contains(path, e.Message);
        Assert.Contains($"schema {RecordSchema.Current + 1}", e.Message);
        Assert.Contains($"reads schema {RecordSchema.Current} and older", e.Message);
    }

    [Fact]
    public void Given_a_file_of_the_current_schema_When_loaded_Then_it_reads()
    {
        string dir = LegacyRun();
        string path = Path.Combine(dir, "settings.json");
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        o["schema"] = RecordSchema.Current;
        File.WriteAllText(path, o.ToJsonString());

        Assert.Equal(RecordSchema.Current, RecordedRun.Load(dir).Schema);
    }

    [Fact]
    public void Given_a_trace_line_without_its_resource_inside_the_file_When_loaded_Then_the_error_names_the_line()
    {
        string dir = LegacyRun();
        string path = Path.Combine(dir, "trace.jsonl");
        var lines = File.ReadAllLines(path);
        lines[4] = """{"step": 1, "operation": "forward"}""";
        File.WriteAllLines(path, lines);

        var e = Assert.Throws<DescriptionException>(() => RecordedRun.Load(dir));

        Assert.Contains($"{path}, line 5", e.Message);
        Assert.Contains("resource", e.Message);
    }

    [Fact]
    public void Given_a_null_loss_When_loaded_Then_the_step_is_not_finite_and_says_so()
    {
        string dir = LegacyRun();
        string path = Path.Combine(dir, "metrics.jsonl");
        var lines = File.ReadAllLines(path);
        var o = JsonNode.Parse(lines[3])!.AsObject();
        o["loss"] = null;
        lines[3] = o.ToJsonString();
        File.WriteAllLines(path, lines);

        var run = RecordedRun.Load(dir);

        Assert.Equal("loss", run.Steps[3].NonFinite);
        Assert.False(run.Steps[3].Finite);
        Assert.Equal(6, run.SteadySteps.Count);
    }
}

/// <summary>A step line's loss: <c>null</c> is the engine's "not finite"; a missing field says nothing about finiteness.</summary>
public sealed class StepMetricsTests
{
    [Fact]
    public void Given_a_line_without_a_loss_When_loaded_Then_its_loss_is_unknown_but_the_step_still_counts()
    {
        string dir = RecordedRunTests.LegacyRun();
        string path = Path.Combine(dir, "metrics.jsonl");
        var lines = File.ReadAllLines(path);
        var o = JsonNode.Parse(lines[3])!.AsObject();
        o.Remove("loss");
        lines[3] = o.ToJsonString();
        File.WriteAllLines(path, lines);

        var run = RecordedRun.Load(dir);

        Assert.True(double.IsNaN(run.Steps[3].Loss));
        Assert.True(run.Steps[3].Finite);
        Assert.Equal(7, run.SteadySteps.Count);
    }

    [Fact]
    public void Given_a_non_finite_loss_When_written_and_read_Then_the_line_holds_null_and_reads_back_not_finite()
    {
        var step = new StepMetrics
        {
            Step = 3, Loss = double.PositiveInfinity, Tokens = 10, WallMs = 1, ForwardMs = 0, BackwardMs = 0, OptimizerMs = 0, IoStallMs = 0, TokensPerSecond = 1,
            CpuReadBytes = 0, CpuWrittenBytes = 0, NvmeReadBytes = 0, NvmeWrittenBytes = 0, NvmeReadGBps = 0, NvmeWriteGBps = 0, UploadBytes = 0,
            DownloadBytes = 0, UploadGBps = 0, ResidentBytes = 0, PeakResidentBytes = 0,
        };

        string line = System.Text.Json.JsonSerializer.Serialize(step, RecordSchema.LineOptions);
        string path = Path.Combine(Directory.CreateTempSubdirectory("aios-line-").FullName, "metrics.jsonl");
        File.WriteAllText(path, line + "\n");
        var read = JsonLines.Read<StepMetrics>(path, new List<string>(), _ => null);

        Assert.Contains("\"loss\":null", line);
        Assert.StartsWith("{\"step\":3,\"loss\":null,", line);
        Assert.True(double.IsNaN(read[0].Loss));
    }
}
