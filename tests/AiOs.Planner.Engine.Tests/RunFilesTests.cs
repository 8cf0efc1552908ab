using AiOs.Planner.Descriptions;
using AiOs.Planner.Engine.Metrics;

namespace AiOs.Planner.Engine.Tests;

/// <summary>Run files on a full disk: the error names the file being written, and no torn line is left behind.</summary>
public sealed class RunFilesTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-runfiles-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Given_ADeviceThatIsAlwaysFull_When_ALineIsAppended_Then_TheErrorNamesThatFileAndSaysDiskFull()
    {
        // /dev/full fails every write with ENOSPC, as a full drive does.
        var e = Assert.Throws<IOException>(() => RunFiles.AppendLine("/dev/full", "{\"step\":1}"));

        Assert.Contains("'/dev/full'", e.Message);
        Assert.Contains("disk full", e.Message);
        Assert.True(AtomicFile.IsDiskFull(e));
    }

    [Fact]
    public void Given_AnAppendTheDiskTakesOnlyPartly_When_ItFails_Then_TheFileIsCutBackToItsLastWholeLine()
    {
        string trace = Path.Combine(_root, "trace.jsonl");
        RunFiles.AppendLine(trace, "{\"step\":1}");
        byte[] before = File.ReadAllBytes(trace);

        var e = Assert.Throws<IOException>(() => RunFiles.AppendLine(trace, "{\"step\":2,\"resource\":\"nvme\"}", (stream, bytes) =>
        {
            stream.Write(bytes, 0, bytes.Length / 2);                 // half the line reached the disk …
            throw new IOException("No space left on device", 28);     // … then the drive filled (HResult carries ENOSPC, as .NET reports it)
        }));

        Assert.Contains(trace, e.Message);
        Assert.Contains("disk full", e.Message);
        Assert.Equal(before, File.ReadAllBytes(trace));
    }

    [Fact]
    public void Given_AnotherIoError_When_ALineIsAppended_Then_TheFileIsNamedWithoutClaimingTheDiskIsFull()
    {
        string metrics = Path.Combine(_root, "metrics.jsonl");

        var e = Assert.Throws<IOException>(() => RunFiles.AppendLine(metrics, "{}", (_, _) => throw new IOException("Input/output error", 5)));

        Assert.Contains(metrics, e.Message);
        Assert.DoesNotContain("disk full", e.Message);
    }

    [Fact]
    public void Given_ADiskFullWhileTheTemporaryCopyIsWritten_When_WrittenAtomically_Then_TheErrorNamesTheTargetAndTheOldContentStays()
    {
        // The temporary copy is a link to /dev/full: its write fails with ENOSPC as on a full drive.
        string summary = Path.Combine(_root, "summary.json");
        File.WriteAllText(summary, "old");
        File.CreateSymbolicLink(Path.Combine(_root, $".summary.json.{Environment.ProcessId}.tmp"), "/dev/full");

        var e = Assert.Throws<IOException>(() => RunFiles.WriteAtomic(summary, "{\"new\": true}"));

        Assert.Contains($"'{summary}'", e.Message);
        Assert.Contains("disk full", e.Message);
        Assert.DoesNotContain(".tmp'", e.Message.Split(" (errno")[0]);
        Assert.Equal("old", File.ReadAllText(summary));
    }
}
