using AiOs.Planner.Records;
using AiOs.Planner.Descriptions;

namespace AiOs.Planner.Reports.Tests;

/// <summary>Reading run files a run cut off: a torn last line is skipped with a warning; damage inside a file is an error naming the line.</summary>
public sealed class RunDataTests
{
    public static TheoryData<string> JsonLinesFiles() => new() { "metrics.jsonl", "trace.jsonl", "predicted-timeline.jsonl" };

    [Theory]
    [MemberData(nameof(JsonLinesFiles))]
    public void Given_ATornLastLine_When_Loaded_Then_ItIsSkippedAndAWarningNamesTheFileAndLine(string file)
    {
        string run = SyntheticRun.Create();
        string path = Path.Combine(run, file);
        int whole = File.ReadAllLines(path).Length;
        var before = RecordedRun.Load(run);
        File.AppendAllText(path, "{\"step\": 9, \"wall_");

        var loaded = RecordedRun.Load(run);

        string warning = Assert.Single(loaded.Warnings);
        Assert.Contains(path, warning);
        Assert.Contains($"line {whole + 1}", warning);
        Assert.Contains("cut off", warning);
        Assert.Equal(before.Steps, loaded.Steps);
        Assert.Equal(before.MeasuredSpans.Count, loaded.MeasuredSpans.Count);
        Assert.Equal(before.PredictedSpans.Count + before.PredictedMemory.Count, loaded.PredictedSpans.Count + loaded.PredictedMemory.Count);
        Assert.Empty(before.Warnings);
    }

    [Theory]
    [MemberData(nameof(JsonLinesFiles))]
    public void Given_ACorruptLineInTheMiddle_When_Loaded_Then_TheErrorNamesTheFileAndLine(string file)
    {
        string run = SyntheticRun.Create();
        string path = Path.Combine(run, file);
        var lines = File.ReadAllLines(path);
        lines[1] = lines[1][..(lines[1].Length / 2)];   // torn, but not last: not what a stopped run leaves
        File.WriteAllLines(path, lines);

        var e = Assert.Throws<DescriptionException>(() => RecordedRun.Load(run));

        Assert.Contains(path, e.Message);
        Assert.Contains("line 2", e.Message);
    }

    [Fact]
    public void Given_AMiddleLineWithoutItsFields_When_Loaded_Then_TheErrorNamesTheLineNotANullReference()
    {
        string run = SyntheticRun.Create();
        string path = Path.Combine(run, "trace.jsonl");
        var lines = File.ReadAllLines(path);
        lines[2] = "{\"step\": 1}";
        File.WriteAllLines(path, lines);

        var e = Assert.Throws<DescriptionException>(() => RecordedRun.Load(run));

        Assert.Contains("line 3", e.Message);
    }

    [Fact]
    public void Given_ALastLineWithoutItsNewline_When_Loaded_Then_ItIsReadAsAWholeLine()
    {
        string run = SyntheticRun.Create();
        string path = Path.Combine(run, "metrics.jsonl");
        File.WriteAllText(path, File.ReadAllText(path).TrimEnd('\n'));

        var loaded = RecordedRun.Load(run);

        Assert.Equal(4, loaded.Steps.Count);
        Assert.Empty(loaded.Warnings);
    }

    [Fact]
    public void Given_ATornLastMetricsLine_When_TheRunIsReported_Then_ThePageShowsTheWarning()
    {
        string run = SyntheticRun.Create();
        File.AppendAllText(Path.Combine(run, "metrics.jsonl"), "{\"step\": 9, \"wall_");

        string html = File.ReadAllText(HtmlReport.Write(RecordedRun.Load(run), Path.Combine(run, "report")));

        Assert.Contains("<h2>Warnings</h2>", html);
        Assert.Contains("line 5: the last line is cut off", html);
    }

    [Fact]
    public void Given_ARunWithATornLastLine_When_ReadAsAHistory_Then_ItIsUsedAndTheSkippedLineIsListed()
    {
        string root = Directory.CreateTempSubdirectory("aios-history-").FullName;
        string dir = Path.Combine(root, "torn");
        Directory.Move(SyntheticRun.Create(), dir);
        File.AppendAllText(Path.Combine(dir, "metrics.jsonl"), "{\"step\": 9, \"wall_");

        var (runs, skipped) = RunHistory.Load(root);

        Assert.Single(runs);
        Assert.Contains("torn: used without a line", Assert.Single(skipped));
    }
}
