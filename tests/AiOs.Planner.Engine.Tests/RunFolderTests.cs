using AiOs.Planner.Engine.Runs;

namespace AiOs.Planner.Engine.Tests;

public sealed class RunFolderTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("aios-runfolder-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Given_AFolderHeldByOneRun_When_ASecondOpensIt_Then_ItIsRefusedUntilTheFirstReleasesIt()
    {
        using (RunFolder first = RunFolder.Open(_root, "same", null))
        {
            var e = Assert.Throws<IOException>(() => RunFolder.Open(_root, "same", null));
            Assert.Contains("in use by another aios train", e.Message);
        }

        using RunFolder again = RunFolder.Open(_root, "same", null);
        Assert.True(Directory.Exists(again.Path));
    }

    [Fact]
    public void Given_AFolderHoldingARun_When_OpenedForANewRun_Then_ItIsRefusedNamingTheFixAndNothingIsChanged()
    {
        string dir = Path.Combine(_root, "old");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), "{\"step\":1}\n");

        var e = Assert.Throws<IOException>(() => RunFolder.Open(_root, "old", null));

        Assert.Contains("--resume", e.Message);
        Assert.Equal("{\"step\":1}\n", File.ReadAllText(Path.Combine(dir, "metrics.jsonl")));
    }

    [Fact]
    public void Given_AFolderHoldingARun_When_ResumedFromACheckpointElsewhere_Then_ItIsRefused()
    {
        Directory.CreateDirectory(Path.Combine(_root, "old"));
        File.WriteAllText(Path.Combine(_root, "old", "summary.json"), "{}");

        var e = Assert.Throws<IOException>(() => RunFolder.Open(_root, "old", Path.Combine(_root, "other", "checkpoints", "step-2")));

        Assert.Contains("not one of its checkpoints", e.Message);
    }

    [Fact]
    public void Given_MetricsAndTraceBeyondTheCheckpointAndATornLine_When_KeptUpToStepTwo_Then_OnlyStepsOneAndTwoRemainInOrder()
    {
        string dir = Path.Combine(_root, "run");
        Directory.CreateDirectory(Path.Combine(dir, "checkpoints", "step-2"));
        File.WriteAllText(Path.Combine(dir, "metrics.jsonl"), "{\"step\":1,\"loss\":3}\n{\"step\":2,\"loss\":2}\n{\"step\":3,\"loss\":1}\n{\"step\":4,\"lo");
        File.WriteAllText(Path.Combine(dir, "trace.jsonl"), "{\"step\":1}\n{\"step\":3}\n{\"step\":2}\n");
        using RunFolder folder = RunFolder.Open(_root, "run", Path.Combine(dir, "checkpoints", "step-2"));

        folder.KeepStepsUpTo(2);

        Assert.Equal(["{\"step\":1,\"loss\":3}", "{\"step\":2,\"loss\":2}"], File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")));
        Assert.Equal(["{\"step\":1}", "{\"step\":2}"], File.ReadAllLines(Path.Combine(dir, "trace.jsonl")));
        Assert.DoesNotContain(Directory.GetFiles(dir), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }
}
