using System.Runtime.InteropServices;
using AiOs.Planner.Calibration.Drive;
using AiOs.Planner.Storage;
using AiOs.Planner.Units;

namespace AiOs.Planner.Calibration.Tests;

public sealed class TestFileSafetyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("aios-tfs-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(PosixSignal.SIGHUP)]
    [InlineData(PosixSignal.SIGTERM)]
    [InlineData(PosixSignal.SIGINT)]
    public void Given_a_test_file_When_a_signal_arrives_Then_its_name_is_removed_at_once_and_dispose_still_works(PosixSignal signal)
    {
        using (var f = TestFile.Create(_dir, Bytes.FromMiB(8), Bytes.FromMiB(8)))
        {
            f.OnSignal(new PosixSignalContext(signal));

            Assert.False(File.Exists(f.Path));
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir));
    }

    [Fact]
    public void Given_a_test_file_When_listed_Then_it_is_recognised_as_a_running_calibration_file_and_clean_keeps_it()
    {
        using var f = TestFile.Create(_dir, Bytes.FromMiB(8), Bytes.FromMiB(8));

        Leftover item = Assert.Single(Leftovers.Find(_dir));
        Leftovers.Clean(_dir, dryRun: false);

        Assert.Equal(ScratchKind.CalibrationFile, item.Kind);
        Assert.Equal(OwnerState.Alive, item.State);
        Assert.Equal(Bytes.FromMiB(8), item.Size);
        Assert.True(File.Exists(f.Path));
    }

    [Fact]
    public void Given_two_test_files_When_created_Then_their_names_are_unpredictable()
    {
        using var a = TestFile.Create(_dir, Bytes.FromMiB(4), Bytes.FromMiB(4));
        using var b = TestFile.Create(_dir, Bytes.FromMiB(4), Bytes.FromMiB(4));

        Assert.NotEqual(a.Path, b.Path);
    }
}
